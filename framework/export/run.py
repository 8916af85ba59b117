"""Exporting a training run: its model, its classes and preprocessing, its own validation images."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..data.run_data import run_data
from ..errors import TlfError
from ..models.trained import TrainedModel, load_run
from ..models.tta import with_tta
from ..registry import get_registry
from ..rundir import CHECKPOINTS
from ..setting_checks import Range, check_choice, check_value
from ..task import TaskRequest
from ..task_outputs import OUTPUTS
from .onnx_export import ExportReport, export_onnx
from .quantize import quantize_int8

QUANTIZE = ("int8",)
EXPORT_TTA = ("none", "flip")


def eval_views(image_set: Any, pipeline: Any, limit: int, seed: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Up to ``limit`` images of ``image_set`` through the eval transform: (uint8 N x 3 x S x S, labels).

    Without ``seed`` the images are evenly spaced over the set (every class of a sorted
    set is represented); with it they are a random sample.
    """
    n = len(image_set)
    if n == 0:
        return np.zeros((0, 3, pipeline.request.image_size, pipeline.request.image_size), np.uint8), np.zeros(0, np.int64)
    if limit >= n:
        index = np.arange(n)
    elif seed is None:
        index = np.unique(np.linspace(0, n - 1, limit).round().astype(np.int64))
    else:
        index = np.sort(np.random.default_rng(seed).choice(n, size=limit, replace=False))
    images = np.stack([pipeline.eval(image_set.load(int(i))).transpose(2, 0, 1) for i in index])
    return np.ascontiguousarray(images), image_set.labels[index]


def max_opset() -> int:
    """The newest ONNX opset the installed onnx package defines."""
    import onnx
    return onnx.defs.onnx_opset_version()


def int8_path(path: Path) -> Path:
    """``model.onnx`` -> ``model.int8.onnx``."""
    return path.with_name(f"{path.stem}.int8{path.suffix or '.onnx'}")


@dataclass(frozen=True)
class ExportSettings:
    """How :func:`export_run` exports a run (each field as ``tlf export``'s option of that name).

    The parity gate uses ``parity_images`` validation images of the run's dataset (found in
    ``data_dir`` if it moved); with ``quantize="int8"`` a QDQ copy ``<output stem>.int8.onnx``
    is calibrated on ``calibration_images`` training images and compared with fp32 on up to
    ``eval_images`` validation images. ``tta="flip"`` exports the model averaging the
    probabilities of each image and its mirror image, in the graph (metadata ``tta``).
    """

    opset: int | None = None  # default: the exporter's
    exporter: str = "auto"  # tlf.export.EXPORTERS
    fp16: bool = False
    quantize: str | None = None  # QUANTIZE
    include_preprocessing: bool = False  # the graph takes uint8 RGB N x 3 x S x S
    checkpoint: str = "best"
    data_dir: str | None = None
    parity_images: int = 64
    calibration_images: int = 128
    eval_images: int = 2000
    tta: str = "none"  # EXPORT_TTA

    def checked(self) -> ExportSettings:
        """These settings, each checked (a :class:`~tlf.errors.TlfError` names the first bad one)."""
        if self.quantize is not None and self.quantize not in QUANTIZE:
            raise TlfError(f"unknown quantization {self.quantize!r}", hint=f"use one of: {', '.join(QUANTIZE)}")
        if self.tta not in EXPORT_TTA:
            raise TlfError(f"invalid export tta {self.tta!r}",
                           hint=f"choose one of: {', '.join(EXPORT_TTA)} (flip+crops needs a larger input; "
                                "use it in tlf evaluate)")
        if self.quantize and self.fp16:
            raise TlfError("--fp16 and --quantize int8 are alternatives", hint="pick one of them")
        return dataclasses.replace(
            self, opset=check_value("opset", self.opset, int | None, Range(7, max_opset())),
            checkpoint=check_choice("checkpoint", self.checkpoint, CHECKPOINTS),
            parity_images=check_value("parity_images", self.parity_images, int, Range(1)),
            calibration_images=check_value("calibration_images", self.calibration_images, int, Range(1)),
            eval_images=check_value("eval_images", self.eval_images, int, Range(1)))


def export_run(run_dir: str | Path, output: str | Path | None = None, settings: ExportSettings | None = None,
               **changes: Any) -> ExportReport:
    """Export the model of ``run_dir`` to ``output`` (default ``RUN_DIR/model.onnx``) as
    ``settings`` say (default :class:`ExportSettings`) with ``changes`` applied:
    ``export_run(run, fp16=True)`` is ``export_run(run, None, ExportSettings(fp16=True))``."""
    settings = dataclasses.replace(settings or ExportSettings(), **changes).checked()
    run = load_run(run_dir, settings.checkpoint)
    config, splits, pipeline = run_data(run, data_dir=settings.data_dir)
    if settings.quantize and splits.multi_label:
        raise TlfError("--quantize int8 compares top-1 accuracy, which a multi-label model does not have",
                       hint=f"export {run_dir} without --quantize (fp32, or --fp16)")
    samples, _ = eval_views(splits.val, pipeline, settings.parity_images)
    if len(samples) == 0:
        raise TlfError(f"dataset {config.dataset} has no validation images for the parity check",
                       hint="export needs real images to compare onnxruntime with PyTorch")
    path = Path(output) if output else Path(run_dir) / "model.onnx"
    image_size = run.preprocessing.image_size
    task = get_registry().create("tasks", run.config.task or "single-label", TaskRequest(run.classes))
    if task.activation not in OUTPUTS:
        raise TlfError(f"task {task.name!r} states activation {task.activation!r}, which no export can name",
                       hint=f"an export's output is {' or '.join(OUTPUTS)} (tlf.task_outputs): the task plugin's "
                            f"activation must be one of them")
    report = export_onnx(with_tta(run.model, settings.tta, image_size, task.activation).eval(), path,
                         image_size=image_size, metadata=_metadata(run, settings, task), opset=settings.opset, exporter=settings.exporter,
                         fp16=settings.fp16, include_preprocessing=settings.include_preprocessing,
                         sample_images=samples)
    if settings.quantize == "int8":
        calibration, _ = eval_views(splits.train, pipeline, settings.calibration_images, seed=config.seed)
        evaluation, labels = eval_views(splits.val, pipeline, settings.eval_images)
        report.quantization = quantize_int8(path, int8_path(path), calibration_images=calibration,
                                            eval_images=evaluation, eval_labels=labels)
    return report


def _metadata(run: TrainedModel, settings: ExportSettings, task: Any) -> dict[str, Any]:
    """What the file says of itself: classes, preprocessing, where the model came from, its accuracy."""
    config = run.config
    val_accuracy = run.summary.get("best_val_accuracy" if settings.checkpoint == "best" else "last_val_accuracy")
    return {"classes": run.classes, **run.preprocessing.to_metadata(), "backbone": config.backbone,
            "policy": config.policy, "dataset": config.dataset, "val_accuracy": val_accuracy, "tta": settings.tta,
            "output": task.activation, **task.export_metadata(run.summary)}
