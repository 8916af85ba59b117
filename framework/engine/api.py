"""The Python API, mirroring the CLI: ``tlf.train(...)`` and ``tlf.evaluate(...)``."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from .. import messages
from ..config import RunConfig


def train(config: RunConfig | str | Path | None = None, *, resume: str | Path | None = None, quiet: bool = False,
          **settings: Any):
    """Train one run and return it (:class:`tlf.engine.trainer.Run`, with ``summary`` and ``directory``).

    ``config`` is a RunConfig or a YAML/JSON file; keyword ``settings`` override it
    (``tlf.train(dataset="flowers", policy="partial:conv5", epochs=5)``). ``resume``
    continues an interrupted run directory from its last checkpoint.
    """
    from ..plan import plan_run
    from .trainer import Trainer

    plan = plan_run(config, settings, resume)
    with messages.scope():  # the run's Reporter is the message channel while it runs
        trainer = Trainer(plan, resume_dir=Path(resume) if resume is not None else None, quiet=quiet)
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

    from ..setting_checks import RANGES, Range, check_value

    top_k = check_value("top_k", top_k, int, Range(1))
    batch_size = check_value("batch_size", batch_size, int, RANGES["batch_size"])
    workers = check_value("workers", workers, int | None, RANGES["workers"])

    from ..data.model_input import to_model_input
    from ..data.loaders import build_eval_loader
    from ..rundir import RunDir, load_run
    from .placement import place
    from .metrics import classification_report
    from .run_plots import plot_confusion
    from ..plan import default_workers
    from .assembly import run_data
    from .trainer import predict_logits

    run = load_run(run_dir, checkpoint)
    config, splits, pipeline = run_data(run, dataset, data_dir)
    placement = place(device, precision)
    val_loader = build_eval_loader(splits, pipeline, batch_size=batch_size,
                                   workers=default_workers(placement.device.type) if workers is None else workers,
                                   seed=config.seed, cache=config.cache, pin_memory=placement.device.type == "cuda")
    layout = torch.channels_last if config.channels_last else torch.contiguous_format
    model = run.model.to(placement.device, memory_format=layout)
    prep = run.preprocessing

    def to_input(images):
        return to_model_input(images, prep.mean, prep.std, placement.device, channels_last=config.channels_last)

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
