"""Static int8 quantization (QDQ) of an exported model, calibrated on training images."""
from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import onnx
from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType,
                                      quantize_static)
from onnxruntime.quantization.shape_inference import quant_pre_process

from ..errors import TlfError
from ..runtime import decode_metadata
from ..safe_files import publish, scratch_file
from ..preprocessing import normalize
from .onnx_export import run_batches, session


@dataclass
class QuantizationReport:
    """int8 vs fp32 on the validation images."""

    path: str
    fp32_path: str
    size_bytes: int
    fp32_size_bytes: int
    calibration_images: int
    eval_images: int
    fp32_accuracy: float
    int8_accuracy: float
    accuracy_change: float  # int8 - fp32, in accuracy points (0.01 = one percent)
    top1_agreement: float  # fraction of images where int8 and fp32 predict the same class
    seconds: float

    @property
    def size_ratio(self) -> float:
        return self.size_bytes / self.fp32_size_bytes

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "size_ratio": self.size_ratio}


class ImageReader(CalibrationDataReader):
    """Feeds calibration batches (model inputs) to onnxruntime's calibrator."""

    def __init__(self, input_name: str, inputs: np.ndarray, batch_size: int = 16) -> None:
        self.batches = iter([{input_name: inputs[i:i + batch_size]} for i in range(0, len(inputs), batch_size)])

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self.batches, None)


def model_inputs(meta: dict[str, Any], images: np.ndarray) -> np.ndarray:
    """uint8 N x 3 x S x S images as a model with tlf metadata ``meta`` takes them."""
    return images if meta["preprocessing_in_graph"] else normalize(images, meta["mean"], meta["std"])


def write_qdq(fp32_path: Path, out_path: Path, input_name: str, inputs: np.ndarray, *,
              per_channel: bool = True) -> None:
    """Write a QDQ int8 copy of the ONNX file ``fp32_path`` (weights and activations int8, MinMax
    calibration on ``inputs``, the model's own input arrays)."""
    with scratch_file(out_path) as tmp:
        try:
            quant_pre_process(str(fp32_path), str(tmp), skip_symbolic_shape=False)
            source = tmp
        except Exception:  # shape inference can fail on exotic graphs; quantize the model as exported
            source = fp32_path
        quantize_static(str(source), str(out_path), ImageReader(input_name, inputs),
                        quant_format=QuantFormat.QDQ, activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
                        per_channel=per_channel, calibrate_method=CalibrationMethod.MinMax)


def quantize_int8(fp32_path: str | Path, out_path: str | Path, *, calibration_images: np.ndarray,
                  eval_images: np.ndarray, eval_labels: Sequence[int], per_channel: bool = True) -> QuantizationReport:
    """Write a QDQ int8 copy of ``fp32_path`` (weights and activations int8, MinMax calibration).

    ``calibration_images`` (training images) and ``eval_images`` (validation images) are
    uint8 N x 3 x S x S after the evaluation transform; the report compares accuracy,
    predictions and file size with the fp32 model.
    """
    start = time.perf_counter()
    fp32_path, out_path = Path(fp32_path), Path(out_path)
    if len(calibration_images) == 0:
        raise TlfError("no calibration images for int8 quantization", hint="the training split is empty")
    if len(eval_images) == 0:
        raise TlfError("no validation images to measure the int8 model on", hint="the validation split is empty")
    fp32_props = {p.key: p.value for p in onnx.load(str(fp32_path)).metadata_props}
    meta = decode_metadata(fp32_props)
    if meta.get("precision", "fp32") != "fp32":
        raise TlfError(f"{fp32_path} is a {meta['precision']} model; int8 quantization starts from fp32",
                       hint="export without --fp16 first")
    sess32 = session(fp32_path)
    input_name = sess32.get_inputs()[0].name
    with scratch_file(out_path) as tmp:  # the int8 file appears whole, by rename
        write_qdq(fp32_path, tmp, input_name, model_inputs(meta, calibration_images), per_channel=per_channel)
        # quantize_static keeps metadata_props; make sure, and mark the precision
        proto = onnx.load(str(tmp))
        onnx.helper.set_model_props(proto, {**{p.key: p.value for p in proto.metadata_props}, **fp32_props,
                                            "tlf.precision": json.dumps("int8")})
        onnx.save(proto, str(tmp))
        publish(tmp, out_path)

    labels = np.asarray(eval_labels)
    inputs = model_inputs(meta, eval_images)
    pred32 = run_batches(sess32, inputs, 32).argmax(1)
    pred8 = run_batches(session(out_path), inputs, 32).argmax(1)
    acc32, acc8 = float((pred32 == labels).mean()), float((pred8 == labels).mean())
    return QuantizationReport(str(out_path), str(fp32_path), out_path.stat().st_size, fp32_path.stat().st_size,
                              len(calibration_images), len(eval_images), acc32, acc8, acc8 - acc32,
                              float((pred32 == pred8).mean()), time.perf_counter() - start)
