"""Choosing the device and the numeric precision of a run.

``--device auto`` takes CUDA, then Apple silicon's ``mps``, then the CPU. What a device
offers (autocast dtypes, pinned host memory) is asked of torch, device type by device
type, in :func:`capabilities`, so that no feature is used where it does not exist.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..errors import TlfError

AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass(frozen=True)
class Capabilities:
    """What one device type offers a run."""

    precisions: tuple[str, ...]  # the precisions allowed there, the automatic choice first
    pin_memory: bool  # page-locked host memory for faster host-to-device copies (CUDA only)


def mps_available() -> bool:
    """Apple silicon's Metal backend is built into this torch and usable on this machine."""
    mps = getattr(torch.backends, "mps", None)
    return mps is not None and mps.is_available()


def auto_device() -> str:
    """``--device auto``: CUDA when available, else ``mps``, else the CPU."""
    if torch.cuda.is_available():
        return "cuda"
    return "mps" if mps_available() else "cpu"


def capabilities(device_type: str) -> Capabilities:
    """The precisions and memory features of ``device_type``, as torch reports them.

    fp16 needs a loss scaler, which tlf runs on CUDA only; bf16 autocast exists on the CPU
    and, from macOS 14 on, on ``mps``; pinned memory is a CUDA feature."""
    if device_type == "cuda":
        return Capabilities(("bf16", "fp16", "fp32") if torch.cuda.is_bf16_supported() else ("fp16", "bf16", "fp32"),
                            pin_memory=True)
    if device_type == "mps":
        bf16 = torch.backends.mps.is_macos_or_newer(14, 0)
        return Capabilities(("fp32", "bf16") if bf16 else ("fp32",), pin_memory=False)
    return Capabilities(("fp32", "bf16"), pin_memory=False)


@dataclass(frozen=True)
class Placement:
    device: torch.device
    precision: str  # bf16 | fp16 | fp32
    amp_dtype: torch.dtype | None  # autocast dtype, None = no autocast
    pin_memory: bool = False  # the loaders pin host memory

    @property
    def uses_scaler(self) -> bool:
        return self.precision == "fp16"


def place(device: str = "auto", precision: str = "auto", local_rank: int | None = None) -> Placement:
    """Resolve ``--device`` and ``--precision`` (auto: the device's first choice in :func:`capabilities`)."""
    _check_available(device)
    if device == "auto":
        device = auto_device()
    dev = torch.device(device, local_rank) if device == "cuda" and local_rank is not None else torch.device(device)
    offered = capabilities(dev.type)
    if precision == "auto":
        precision = offered.precisions[0]
    if precision not in offered.precisions:
        raise TlfError(f"--precision {precision} is not available on {dev.type}",
                       hint=f"use --precision {' or '.join(offered.precisions)} on {dev.type}")
    if dev.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    return Placement(dev, precision, AMP_DTYPES.get(precision), pin_memory=offered.pin_memory)


def _check_available(device: str) -> None:
    if device == "cuda" and not torch.cuda.is_available():
        raise TlfError("--device cuda was asked for but CUDA is not available",
                       hint="use --device cpu (or auto), or install a CUDA build of torch")
    if device == "mps" and not mps_available():
        raise TlfError("--device mps was asked for but Apple's Metal backend (mps) is not available",
                       hint="use --device cpu (or auto); mps needs Apple silicon, macOS 12.3+ and an arm64 build of torch")
