"""The Python API, mirroring the CLI: ``tlf.train(...)`` and ``tlf.evaluate(...)``."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from .. import messages
from ..errors import RunInterrupted, TlfError
from ..config import RunConfig


def train(config: RunConfig | str | Path | None = None, *, resume: str | Path | None = None, quiet: bool = False,
          should_stop: Callable[[int, dict], bool] | None = None, **settings: Any):
    """Train one run and return it (:class:`tlf.engine.trainer.TrainingRun`, with ``summary`` and ``directory``).

    ``config`` is a RunConfig or a YAML/JSON file; keyword ``settings`` override it
    (``tlf.train(dataset="flowers", policy="partial:conv5", epochs=5)``). ``resume``
    continues an interrupted run directory from its last checkpoint; with ``epochs`` above
    the planned number it continues to that many (the schedule is stretched to the new
    length: the rest of the run follows the schedule of a run planned that long). ``should_stop(epoch, row)``
    is asked after each epoch (``row`` is its line of metrics.jsonl); True ends the run there,
    as early stopping does (``tlf tune`` prunes trials with it). Ctrl-C during training raises
    :class:`~tlf.errors.RunInterrupted` (a ``KeyboardInterrupt`` naming the run directory to resume).
    """
    from ..plan import plan_run

    plan = plan_run(config, settings, resume)  # checked before the engine (and its libraries) is imported
    from .trainer import Trainer
    with messages.scope():  # the run's Reporter is the message channel while it runs
        trainer = Trainer(plan, resume_dir=Path(resume) if resume is not None else None, quiet=quiet,
                          should_stop=should_stop)
        try:
            trainer.fit()
        except KeyboardInterrupt as exc:
            raise RunInterrupted(trainer.run.directory, len(trainer.history), trainer.config.epochs) from exc
        finally:
            trainer.close()  # the run directory's lock
    return trainer.run


def lr_find(config: RunConfig | str | Path | None = None, *, plot: str | Path | None = None, steps: int = 200,
            quiet: bool = False, **settings: Any):
    """The lr range test for these settings (as :func:`train` takes them), without training:
    a :class:`tlf.engine.lr_find.LrFinding`; ``plot`` saves the loss-against-lr figure."""
    from .lr_find import find_lr
    from .run_plots import plot_lr_find
    from .trainer import Trainer

    from ..plan import plan_run
    with messages.scope():  # the finder's Reporter is the message channel while it runs
        trainer = Trainer(plan_run(config, settings), quiet=quiet, open_run_dir=False)
        if trainer.world.distributed:
            raise TlfError("tlf lr-find runs in one process", hint="run it without torchrun")
        trainer.prepare()
        finding = find_lr(trainer, steps=steps)
    if plot is not None:
        plot_lr_find(finding, Path(plot))
    return finding


def evaluate(run_dir: str | Path, *, dataset: str | None = None, data_dir: str | None = None, checkpoint: str = "best",
             top_k: int = 5, batch_size: int = 64, device: str = "auto", precision: str = "auto",
             workers: int | None = None, write: bool = True, tta: str = "none",
             insight: Any = None, logits: tuple[Any, Any] | None = None, engine: str = "auto") -> dict:
    """Accuracy, per-class precision/recall/F1, top-k and the confusion matrix of a run's model
    on the validation split of its dataset (or of ``dataset``). Writes evaluation.json and
    confusion.png into the run directory unless ``write`` is False. ``precision`` "fp32"
    scores the weights exactly as the exported ONNX model computes them. ``tta`` "flip"
    averages the probabilities of each image and its mirror image; "flip+crops" those of the
    centre and four corner crops of the image resized for evaluation (before its centre crop)
    and of their mirror images. ``engine`` runs the images through the model
    (:mod:`tlf.engine.eval_engine`: ``auto`` is onnxruntime on the CPU at fp32, torch elsewhere).

    Per-image results (:mod:`tlf.insight.evaluation`: predictions.csv, top losses, most
    confused pairs, galleries with Grad-CAM) follow ``insight``, a
    :class:`~tlf.insight.evaluation.InsightOptions` (default: its defaults).

    ``logits``: the (logits, labels) of the validation split that training already computed
    with this checkpoint's weights (``TrainingRun.best_val_logits``), so the images are not run
    through the model again; they are used only when their labels are the split's, in order."""
    import dataclasses

    import torch

    from ..setting_checks import RANGES, Range, check_value

    top_k = check_value("top_k", top_k, int, Range(1))
    batch_size = check_value("batch_size", batch_size, int, RANGES["batch_size"])
    workers = check_value("workers", workers, int | None, RANGES["workers"])

    from ..data.model_input import to_model_input
    from ..data.loaders import build_eval_loader
    from ..rundir import RunDirWriter, load_run
    from .placement import place
    from .metrics import classification_report
    from .run_plots import plot_confusion
    from ..plan import default_workers
    from .assembly import run_data
    from ..models.tta import TTA_MODES, with_tta
    from .assembly import pipeline_for
    from ..setting_checks import check_choice
    from .eval_engine import ENGINES, evaluation_logits

    engine = check_choice("engine", engine, ENGINES)
    if tta not in TTA_MODES:
        raise TlfError(f"invalid tta {tta!r}", hint=f"choose one of: {', '.join(TTA_MODES)}")
    run = load_run(run_dir, checkpoint)
    config, splits, pipeline = run_data(run, dataset, data_dir)
    if tta == "flip+crops":  # the whole resized square, the crops are taken from it
        whole = dataclasses.replace(run.preprocessing, image_size=run.preprocessing.resize)
        pipeline = pipeline_for(dataclasses.replace(config, image_size=whole.image_size), whole, len(run.classes),
                                augment="none")
    placement = place(device, precision)
    val_loader = build_eval_loader(splits, pipeline, batch_size=batch_size,
                                   workers=default_workers(placement.device.type) if workers is None else workers,
                                   seed=config.seed, cache=config.cache, pin_memory=placement.device.type == "cuda")
    layout = torch.channels_last if config.channels_last else torch.contiguous_format
    base = run.model.to(placement.device, memory_format=layout)  # Grad-CAM explains the model itself
    model = with_tta(base, tta, run.preprocessing.image_size)
    prep = run.preprocessing

    def to_input(images):
        return to_model_input(images, prep.mean, prep.std, placement.device, channels_last=config.channels_last)

    if _reusable(logits, val_loader.dataset, tta, dataset):
        engine_note = "none: the logits training computed with these weights"
    else:
        *logits, engine_note = evaluation_logits(engine, model, val_loader, to_input, placement, prep.mean, prep.std,
                                                 f"{config.backbone}-{tta}-model")
    logits, labels = logits
    report = classification_report(logits.numpy(), labels.numpy(), run.classes, top_k=top_k)
    report.update({"run_dir": str(run.directory), "checkpoint": checkpoint, "dataset": config.dataset,
                   "precision": placement.precision, "tta": tta, "engine": engine_note})
    from ..insight.evaluation import InsightOptions, analyse
    analyse(report, logits.numpy(), labels.numpy(), val_loader.dataset.images, splits, insight or InsightOptions(),
            out=run.directory if write else None, model=base, transform=pipeline.eval_transform, to_input=to_input)
    if write:
        out = RunDirWriter(run.directory)
        out.write_json("evaluation.json", report)
        plot_confusion(report["confusion_matrix"], run.classes, run.directory / "confusion.png",
                       title=f"{config.dataset} · {config.backbone} · {checkpoint}")
    return report


def _reusable(logits: tuple[Any, Any] | None, val_set: Any, tta: str, dataset: str | None) -> bool:
    """Whether precomputed validation ``logits`` stand for this evaluation: no TTA, the run's
    own dataset, one row per image and the same labels in the same order."""
    if logits is None or tta != "none" or dataset is not None:
        return False
    import torch
    labels = torch.as_tensor(list(val_set.images.labels), dtype=torch.long)
    return len(logits[0]) == len(labels) and torch.equal(logits[1].cpu(), labels)
