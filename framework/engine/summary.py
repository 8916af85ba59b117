"""summary.json: what a finished run reports about itself (main process)."""
from __future__ import annotations

from typing import Any

import numpy as np

from .. import __version__
from ..models import count_params


def run_summary(loop: Any) -> dict[str, Any]:
    """The run's summary: the loop's figures, the batch source's engines, then what each callback adds."""
    c, history = loop.config, loop.history
    total, trainable = count_params(loop.model)
    best = loop.task.best_row(history)
    best_value, best_weights = loop.task.best_of(best) if best else (None, None)
    summary = {
        "run_dir": str(loop.run_dir.path) if loop.run_dir is not None else None, "dataset": c.dataset,
        "backbone": c.backbone, "policy": loop.policy.name, "task": c.task, "epochs": len(history),
        "planned_epochs": c.epochs, "best_val_accuracy": best_value, "best_epoch": best.get("epoch"),
        "best_weights": best_weights, "best_metric": f"val_{loop.task.metric}", "ema": c.ema,
        "lr": c.lr, "lr_find": None, "head_lr_scale": c.head_lr_scale, "defaults_chosen": loop.defaults_chosen,
        "schedule": c.schedule, "batch_size": c.batch_size, "accumulate": c.accumulate, "class_weights": loop.class_weights, "sampler": c.sampler,
        "last_val_accuracy": history[-1][f"val_{loop.task.metric}"] if history else None,
        "last_train_accuracy": history[-1][f"train_{loop.task.metric}"] if history else None,
        "seconds": round(loop.wall_seconds(), 2),
        "images_per_second": round(np.median([r["images_per_second"] for r in history]), 1) if history else None,
        "total_params": total, "trainable_params": trainable, "device": str(loop.device),
        "precision": loop.placement.precision, **loop.source.describe(), "callbacks": list(c.callbacks),
        "tlf_version": __version__,
        **({"data_edits": loop.parts.splits.edits} if loop.parts.splits.edits else {}),  # --exclude/--relabel
        **loop.task.decision(*(loop.run.best_val_logits or (None, None))),  # multi-label: thresholds tuned on val
    }
    for callback in loop.callbacks:
        summary.update(callback.summary(loop))
    return summary
