"""``--frozen-engine onnxruntime-int8``: the exported fp32 frozen prefix quantized to int8 (static
QDQ, calibrated on training images), cached beside it, checked against torch before it is used.

Quantization is onnxruntime's (:func:`tlf.export.quantize.write_qdq`, the one ``tlf export
--quantize int8`` uses); what is written here is the cache key and the parity gate. int8 features
are not fp32's, so the gate is looser than the fp32 engine's: the relative L2 error of the
features, ||int8 - torch|| / ||torch||, at most :data:`TOLERANCE` (docs/performance.md gives the
error measured on real weights and the accuracy change it makes on flowers).
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import torch

from ..errors import first_line
from ..safe_files import publish, scratch_file
from .onnx_prefix import OnnxPrefix, cached_path, open_session, prune

# relative L2 error of the features: the error must stay below the features' own size. It catches a
# broken quantization (NaN, a wrong graph), not int8's imprecision: pretrained Lite0 on flowers
# measured 0.66 (its early depthwise layers quantize badly), docs/performance.md has its accuracy cost
TOLERANCE = 1.0
CALIBRATION_IMAGES = 64


def calibration_key(fp32_path: Path, images: torch.Tensor) -> str:
    """Cache key of the int8 file: the fp32 export it quantizes (its name holds that key) and the
    calibration images' bytes."""
    digest = hashlib.sha256(f"{fp32_path.stem}|{tuple(images.shape)}".encode())
    digest.update(np.ascontiguousarray(images.numpy()).tobytes())
    return digest.hexdigest()[:24]


def parity(engine: OnnxPrefix, reference: torch.Tensor, sample: torch.Tensor) -> tuple[bool, str]:
    """Whether ``engine``'s features of ``sample`` are within :data:`TOLERANCE` of torch's fp32
    ``reference`` (relative L2 error), and the figures."""
    got = engine(sample).float()
    if got.shape != reference.shape:
        return False, f"output shape {tuple(got.shape)} instead of {tuple(reference.shape)}"
    error = float((got - reference).norm() / reference.norm().clamp_min(1e-12))
    ok = error <= TOLERANCE  # NaN fails
    return ok, f"relative feature error {error:.3g} (tolerance {TOLERANCE:g})"


def int8_prefix(fp32: OnnxPrefix, calibration: torch.Tensor, sample: torch.Tensor, reference: torch.Tensor,
                threads: int, channels_last: bool = False) -> tuple[OnnxPrefix | None, str]:
    """An int8 engine quantized from the fp32 engine ``fp32`` with ``calibration`` (uint8 N x 3 x H x W
    training images) that passed the int8 gate on ``sample`` against ``reference``, and a note;
    ``(None, why)`` when quantization fails or misses the gate. A cached file is reused when its key
    matches and it passes the gate, rebuilt otherwise."""
    from ..export.quantize import write_qdq

    path = cached_path(f"{fp32.path.stem}-int8", calibration_key(fp32.path, calibration))
    if path.is_file():
        try:
            engine = OnnxPrefix(open_session(path, threads), path, channels_last, name="onnxruntime-int8")
            ok, figures = parity(engine, reference, sample)
        except Exception as exc:  # a truncated or corrupted file: onnxruntime's own error types
            ok, figures = False, type(exc).__name__
        if ok:
            os.utime(path)  # recently used: prune keeps it
            return engine, f"reused the cached int8 file, {figures}"
        note = f"quantized again (the cached file failed: {figures})"
    else:
        note = f"quantized once, calibrated on {len(calibration)} training images"
    try:
        inputs = np.ascontiguousarray(calibration.permute(0, 2, 3, 1).numpy())
        with scratch_file(path) as tmp:  # a private folder: no link planted in the cache is written through
            write_qdq(fp32.path, tmp, fp32.input_name, inputs)
            publish(tmp, path)
        prune(path.parent, keep=path)
        engine = OnnxPrefix(open_session(path, threads), path, channels_last, name="onnxruntime-int8")
        ok, figures = parity(engine, reference, sample)
    except Exception as exc:
        return None, f"int8 quantization failed ({first_line(exc)})"
    if not ok:
        path.unlink(missing_ok=True)
        return None, f"the int8 prefix is too far from torch: {figures}"
    return engine, f"{note}, {figures}"
