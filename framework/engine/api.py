"""The Python API, mirroring the CLI: ``tlf.train(...)`` and ``tlf.evaluate(...)``."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from ..config import RunConfig, load_config
from ..errors import TlfError


def train(config: RunConfig | str | Path | None = None, *, resume: str | Path | None = None, quiet: bool = False,
          **settings: Any):
    """Train one run and return it (:class:`tlf.engine.trainer.Run`, with ``summary`` and ``directory``).

    ``config`` is a RunConfig or a YAML/JSON file; keyword ``settings`` override it
    (``tlf.train(dataset="flowers", policy="partial:conv5", epochs=5)``). ``resume``
    continues an interrupted run directory from its last checkpoint.
    """
    from .trainer import Trainer, resume_config

    if resume is not None:
        if config is not None:
            raise TlfError("--resume continues a run with its own config.yaml; --config cannot be combined with it",
                           hint="drop --config, or start a new run with it")
        resume = Path(resume)
        config = resume_config(resume)
        allowed = {"device", "precision", "workers", "compile", "cache", "batch_size", "frozen_engine"}
        changed = sorted(k for k, v in settings.items() if v is not None and k not in allowed)
        if changed:
            raise TlfError(f"cannot change {', '.join(changed)} when resuming",
                           hint=f"resume with the run's own settings, or start a new run")
        config = config.merged(settings).validate()
    elif isinstance(config, RunConfig):
        config = config.merged(settings).validate()
    else:
        config = load_config(config, **settings)
    trainer = Trainer(config, resume_dir=resume, quiet=quiet)
    trainer.fit()
    return trainer.run


def evaluate(run_dir: str | Path, *, dataset: str | None = None, data_dir: str | None = None, checkpoint: str = "best",
             top_k: int = 5, batch_size: int = 64, device: str = "auto", precision: str = "auto",
             workers: int | None = None, write: bool = True) -> dict:
    """Accuracy, per-class precision/recall/F1, top-k and the confusion matrix of a run's model
    on the validation split of its dataset (or of ``dataset``). Writes evaluation.json and
    confusion.png into the run directory unless ``write`` is False. ``precision`` "fp32"
    scores the weights exactly as the exported ONNX model computes them."""
    import torch

    from ..data.device import to_model_input
    from ..data.loaders import build_eval_loader
    from ..rundir import RunDir, load_run
    from .device import place
    from .metrics import classification_report
    from .plots import plot_confusion
    from .setup import default_workers, run_data
    from .trainer import predict_logits

    run = load_run(run_dir, checkpoint)
    config, splits, pipeline = run_data(run, dataset, data_dir)
    placement = place(device, precision)
    val_loader = build_eval_loader(splits, pipeline, batch_size=batch_size,
                                   workers=default_workers(placement.device.type) if workers is None else workers,
                                   seed=config.seed, cache=config.cache, pin_memory=placement.device.type == "cuda")
    layout = torch.channels_last if config.channels_last else torch.contiguous_format
    model = run.model.to(placement.device, memory_format=layout)
    meta = run.meta

    def to_input(images):
        return to_model_input(images, meta.mean, meta.std, placement.device, channels_last=config.channels_last)

    logits, labels = predict_logits(model, val_loader, to_input, placement)
    report = classification_report(logits.numpy(), labels.numpy(), run.classes, top_k=top_k)
    report.update({"run_dir": str(run.directory), "checkpoint": checkpoint, "dataset": config.dataset,
                   "precision": placement.precision})
    if write:
        out = RunDir(run.directory)
        out.write_json("evaluation.json", report)
        plot_confusion(report["confusion_matrix"], run.classes, run.directory / "confusion.png",
                       title=f"{config.dataset} · {config.backbone} · {checkpoint}")
    return report
