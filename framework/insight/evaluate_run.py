"""``tlf.evaluate``: a run's model scored on a validation set, with its per-image results."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from ..data.loaders import build_eval_loader
from ..data.model_input import to_model_input
from ..data.run_data import pipeline_for, run_data
from ..errors import TlfError
from ..engine import eval_engine
from ..engine.placement import Placement, place
from ..models.trained import TrainedModel, load_run
from ..models.tta import TTA_MODES, with_tta
from ..plan import default_workers
from ..registry import get_registry
from ..rundir import CHECKPOINTS, RunDirWriter
from ..setting_checks import RANGES, Range, check_choice, check_value
from ..task import Task, TaskRequest
from .evaluation import InsightOptions

SPLITS = ("val", "test")  # what tlf evaluate --split scores


@dataclass(frozen=True)
class EvaluationSettings:
    """How ``tlf.evaluate`` scores a run (each field as ``tlf evaluate``'s option of that name).

    ``dataset``/``data_dir``: another dataset with the run's classes, or where the run's own
    dataset is now. ``precision`` "fp32" scores the weights exactly as the exported ONNX model
    computes them. ``tta`` "flip" averages the probabilities of each image and its mirror image;
    "flip+crops" those of the centre and four corner crops of the image resized for evaluation
    (before its centre crop) and of their mirror images. ``engine`` runs the images through the
    model (:mod:`tlf.engine.eval_engine`: ``auto`` is onnxruntime on the CPU at fp32, torch
    elsewhere). ``write`` False leaves the run directory as it is. ``insight`` sets the per-image
    results (:class:`~tlf.insight.evaluation.InsightOptions`).
    """

    dataset: str | None = None
    data_dir: str | None = None
    checkpoint: str = "best"
    top_k: int = 5
    batch_size: int = 64
    device: str = "auto"
    precision: str = "auto"
    workers: int | None = None  # default: tlf.plan.default_workers for the device
    tta: str = "none"
    engine: str = "auto"
    write: bool = True
    insight: InsightOptions = field(default_factory=InsightOptions)
    split: str = "val"

    def checked(self) -> EvaluationSettings:
        """These settings, each checked (a :class:`~tlf.errors.TlfError` names the first bad one)."""
        return dataclasses.replace(
            self, checkpoint=check_choice("checkpoint", self.checkpoint, CHECKPOINTS),
            top_k=check_value("top_k", self.top_k, int, Range(1)),
            batch_size=check_value("batch_size", self.batch_size, int, RANGES["batch_size"]),
            workers=check_value("workers", self.workers, int | None, RANGES["workers"]),
            tta=check_choice("tta", self.tta, TTA_MODES),
            engine=check_choice("engine", self.engine, eval_engine.ENGINES),
            split=check_choice("split", self.split, SPLITS))


def evaluate(run_dir: str | Path, settings: EvaluationSettings | None = None, *,
             logits: tuple[Any, Any] | None = None, **changes: Any) -> dict:
    """The figures of the run's task (:meth:`tlf.task.Task.evaluation_report`; single-label:
    accuracy, per-class precision/recall/F1, top-k and the confusion matrix; multi-label: mAP,
    F1 and per-class AP at the run's thresholds) of a run's model on the validation split of its
    dataset, with the per-image results of ``settings.insight`` (:meth:`tlf.task.Task.analyse`:
    predictions.csv, the worst images, galleries with Grad-CAM). Writes evaluation.json and the
    task's figures (confusion.png; pr_curves.png) into the run directory unless ``settings.write``
    is False.

    ``settings`` (default :class:`EvaluationSettings`) with ``changes`` applied:
    ``tlf.evaluate(run_dir, device="cpu", write=False)`` is
    ``tlf.evaluate(run_dir, EvaluationSettings(device="cpu", write=False))``.

    ``logits``: the (logits, labels) of the validation split that training already computed
    with this checkpoint's weights (``TrainingRun.best_val_logits``), so the images are not run
    through the model again; they are used only when their labels are the split's, in order."""
    settings = dataclasses.replace(settings or EvaluationSettings(), **changes).checked()
    run = load_run(run_dir, settings.checkpoint)
    config, splits, pipeline = _data(run, settings)
    out = run.directory / "test" if settings.split == "test" else run.directory
    if settings.write:
        out.mkdir(exist_ok=True)
    placement = place(settings.device, settings.precision)
    workers = default_workers(placement.device.type) if settings.workers is None else settings.workers
    val_loader = build_eval_loader(splits, pipeline, batch_size=settings.batch_size, workers=workers, seed=config.seed,
                                   cache=config.cache, pin_memory=placement.pin_memory)
    layout = torch.channels_last if config.channels_last else torch.contiguous_format
    base = run.model.to(placement.device, memory_format=layout)  # Grad-CAM explains the model itself
    prep = run.preprocessing

    def to_input(images: torch.Tensor) -> torch.Tensor:
        return to_model_input(images, prep.mean, prep.std, placement.device, channels_last=config.channels_last)

    task = get_registry().create("tasks", config.task or "single-label", TaskRequest(run.classes))
    if _reusable(logits, val_loader.dataset, settings):
        engine_note = "none: the logits training computed with these weights"
    else:
        *logits, engine_note = _run_model(with_tta(base, settings.tta, prep.image_size, task.activation), val_loader,
                                          to_input, placement, run, settings)
    decision = _decision(task, run, settings, logits)
    scores, labels = (t.numpy() for t in logits)
    report = task.evaluation_report(scores, labels, run.classes, settings.top_k, decision)
    report.update({"run_dir": str(run.directory), "split": settings.split, "checkpoint": settings.checkpoint,
                   "dataset": config.dataset, "precision": placement.precision, "tta": settings.tta, "engine": engine_note})
    task.analyse(report, scores, labels, val_loader.dataset.images, splits, settings.insight,
                 out if settings.write else None, base, pipeline.eval_transform, to_input)
    if settings.write:
        title = f"{config.dataset} · {config.backbone} · {run.checkpoint}" + (" · test split" if out != run.directory else "")
        _write(report, run, task, out, title)
    return report


def _decision(task: Task, run: TrainedModel, settings: EvaluationSettings, logits: Any) -> dict[str, Any]:
    """What the run keeps for predicting (:meth:`tlf.task.Task.decision`: multi-label's thresholds), from
    its summary.json; a run that could not tune it (torch.distributed, a resume that did not improve)
    gets it tuned now on its own validation split, stored in summary.json when ``settings.write``."""
    kept = dict(run.summary)
    own_validation = (settings.dataset is None and settings.split == "val"
                      and settings.tta == "none" and settings.checkpoint == "best")
    if not own_validation:
        return kept
    fresh = task.decision(*logits)
    missing = {k: v for k, v in fresh.items() if kept.get(k) is None}
    if missing and settings.write and (run.directory / "summary.json").is_file():
        RunDirWriter(run.directory).write_json("summary.json", {**run.summary, **missing})
    return {**kept, **missing}


def _data(run: TrainedModel, settings: EvaluationSettings) -> tuple[Any, Any, Any]:
    """The run's plan for this evaluation, the splits and the eval pipeline (for ``flip+crops``:
    the whole resized square, which the crops are taken from)."""
    config, splits, pipeline = run_data(run, settings.dataset, settings.data_dir)
    if settings.split == "test":
        if splits.test is None:
            raise TlfError(f"{config.dataset} has no test split",
                           hint="add a test/ folder beside train/ and val/, or split=test rows to the table; "
                                "or evaluate --split val")
        splits = dataclasses.replace(splits, val=splits.test)  # scored as the validation split is
    if settings.tta == "flip+crops":
        whole = dataclasses.replace(run.preprocessing, image_size=run.preprocessing.resize)
        pipeline = pipeline_for(dataclasses.replace(config, image_size=whole.image_size), whole, len(run.classes),
                                augment="none")
    return config, splits, pipeline


def _run_model(model: torch.nn.Module, loader: Any, to_input: Callable, placement: Placement, run: TrainedModel,
               settings: EvaluationSettings) -> tuple[torch.Tensor, torch.Tensor, str]:
    """The logits and labels of every image, and a note on the engine that computed them."""
    prep = run.preprocessing
    return eval_engine.evaluation_logits(settings.engine, model, loader, to_input, placement, prep.mean, prep.std,
                             f"{run.config.backbone}-{settings.tta}-model")


def _write(report: dict, run: TrainedModel, task: Task, out: Path, title: str) -> None:
    """evaluation.json and the task's figures (single-label: confusion.png) in ``out`` (the run
    directory, or its test/ folder)."""
    RunDirWriter(out).write_json("evaluation.json", report)
    task.evaluation_figures(report, run.classes, out, title)


def _reusable(logits: tuple[Any, Any] | None, val_set: Any, settings: EvaluationSettings) -> bool:
    """Whether precomputed validation ``logits`` stand for this evaluation: no TTA, the run's
    own dataset, one row per image and the same labels in the same order."""
    if logits is None or settings.tta != "none" or settings.dataset is not None or settings.split != "val":
        return False
    labels = torch.as_tensor(np.asarray(val_set.images.labels))
    return len(logits[0]) == len(labels) and torch.equal(logits[1].cpu().to(labels.dtype), labels)
