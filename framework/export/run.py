"""Exporting a training run: its model, its classes and preprocessing, its own validation images."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..errors import TlfError
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


def export_run(run_dir: str | Path, output: str | Path | None = None, *, opset: int | None = None,
               exporter: str = "auto", fp16: bool = False, quantize: str | None = None,
               include_preprocessing: bool = False, checkpoint: str = "best", data_dir: str | None = None,
               parity_images: int = 64, calibration_images: int = 128, eval_images: int = 2000,
               tta: str = "none") -> ExportReport:
    """Export the model of ``run_dir`` to ``output`` (default ``RUN_DIR/model.onnx``).

    The parity gate uses ``parity_images`` validation images of the run's dataset; with
    ``quantize="int8"`` a QDQ copy ``<output stem>.int8.onnx`` is calibrated on
    ``calibration_images`` training images and compared with fp32 on up to
    ``eval_images`` validation images. ``tta="flip"`` exports the model averaging the
    probabilities of each image and its mirror image, in the graph (metadata ``tta``).
    """
    from ..engine.assembly import run_data
    from ..rundir import load_run

    from ..setting_checks import Range, check_value

    opset = check_value("opset", opset, int | None, Range(7, max_opset()))
    parity_images = check_value("parity_images", parity_images, int, Range(1))
    calibration_images = check_value("calibration_images", calibration_images, int, Range(1))
    eval_images = check_value("eval_images", eval_images, int, Range(1))
    if quantize is not None and quantize not in QUANTIZE:
        raise TlfError(f"unknown quantization {quantize!r}", hint=f"use one of: {', '.join(QUANTIZE)}")
    if tta not in EXPORT_TTA:
        raise TlfError(f"invalid export tta {tta!r}", hint=f"choose one of: {', '.join(EXPORT_TTA)} "
                                                           "(flip+crops needs a larger input; use it in tlf evaluate)")
    if quantize and fp16:
        raise TlfError("--fp16 and --quantize int8 are alternatives", hint="pick one of them")
    run = load_run(run_dir, checkpoint)
    config, splits, pipeline = run_data(run, data_dir=data_dir)
    preprocessing = run.preprocessing
    samples, _ = eval_views(splits.val, pipeline, parity_images)
    if len(samples) == 0:
        raise TlfError(f"dataset {config.dataset} has no validation images for the parity check",
                       hint="export needs real images to compare onnxruntime with PyTorch")
    summary = run.summary
    val_accuracy = summary.get("best_val_accuracy" if checkpoint == "best" else "last_val_accuracy")
    metadata = {
        "classes": run.classes, **preprocessing.to_metadata(), "backbone": config.backbone,
        "policy": config.policy, "dataset": config.dataset, "val_accuracy": val_accuracy, "tta": tta, "task": config.task,
    }
    path = Path(output) if output else Path(run_dir) / "model.onnx"
    from ..models.tta import with_tta
    report = export_onnx(with_tta(run.model, tta, preprocessing.image_size).eval(), path, image_size=preprocessing.image_size,
                         metadata=metadata, opset=opset, exporter=exporter,
                         fp16=fp16, include_preprocessing=include_preprocessing, sample_images=samples)
    if quantize == "int8":
        calibration, _ = eval_views(splits.train, pipeline, calibration_images, seed=config.seed)
        evaluation, labels = eval_views(splits.val, pipeline, eval_images)
        report.quantization = quantize_int8(path, int8_path(path), calibration_images=calibration,
                                            eval_images=evaluation, eval_labels=labels)
    return report
