"""The held-out test split, scored once at the end of a run: the checkpoint picked on validation
(``best.pt``) is run over ``splits.test`` and scored by the run's task (its validation sums and
metrics, so any task works). The figures go into summary.json under ``test`` and one line of
the run's output; they never choose a checkpoint."""
from __future__ import annotations

import copy
import dataclasses
from typing import Any

from tlf.data.loaders import build_eval_loader
from tlf.engine.callback import Callback
from tlf.engine.eval_engine import predict_logits
from tlf.rundir import load_checkpoint, load_model_state


class HeldOutTest(Callback):
    order = 65  # after the checkpoint callback, whose best.pt it reads
    name = "test-split"

    def summary(self, loop: Any) -> dict[str, Any]:
        """``{"test": {<metric>: ..., "loss": ..., "images": N, "epoch": E}}`` when the data has a
        test split and the run a best checkpoint; else nothing."""
        splits = loop.parts.splits
        if splits.test is None or loop.run_dir is None or not (loop.run_dir.path / "best.pt").is_file():
            return {}
        with loop.report.phase(f"test split: the best checkpoint on {len(splits.test)} held-out images"):
            scores = held_out_scores(loop)
        task = loop.task
        loop.report.info(f"{task.metric_label} {task.best_of(task.best_row(loop.history))[0]:.3f} (picked the checkpoint, epoch {scores['epoch']}) "
                         f"· test {task.metric_label.removeprefix('val ')} {scores[task.metric]:.3f} "
                         f"on {scores['images']} held-out images")
        return {"test": scores}


def held_out_scores(loop: Any) -> dict[str, Any]:
    """The task's metrics (plain numbers) of ``best.pt`` on the loop's test split, with the image count and epoch."""
    parts, config, placement = loop.parts, loop.config, loop.placement
    state = load_checkpoint(loop.run_dir.path, "best", map_location=str(loop.device))
    model = copy.deepcopy(parts.model)
    load_model_state(model, state, loop.run_dir.path / "best.pt", list(parts.splits.classes))
    loader = build_eval_loader(dataclasses.replace(parts.splits, val=parts.splits.test), parts.pipeline,
                               batch_size=config.batch_size, workers=config.workers, seed=config.seed,
                               cache=config.cache, pin_memory=placement.pin_memory)
    logits, labels = predict_logits(model, loader, loop.source.to_input, placement)
    metrics = loop.task.validation_metrics(loop.task.validation_sums(logits, labels))
    scores = {k: v for k, v in metrics.items() if isinstance(v, (int, float))}
    return {**scores, "images": len(parts.splits.test), "epoch": int(state["epoch"]) + 1}
