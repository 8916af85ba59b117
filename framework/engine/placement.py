"""Choosing the device and the numeric precision of a run."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..errors import TlfError


@dataclass(frozen=True)
class Placement:
    device: torch.device
    precision: str  # bf16 | fp16 | fp32
    amp_dtype: torch.dtype | None  # autocast dtype, None = no autocast

    @property
    def uses_scaler(self) -> bool:
        return self.precision == "fp16"


def place(device: str = "auto", precision: str = "auto", local_rank: int | None = None) -> Placement:
    """Resolve ``--device`` and ``--precision`` (auto: bf16 on GPUs that support it, fp32 on CPU)."""
    if device == "cuda" and not torch.cuda.is_available():
        raise TlfError("--device cuda was asked for but CUDA is not available",
                       hint="use --device cpu (or auto), or install a CUDA build of torch")
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    dev = torch.device(device, local_rank) if device == "cuda" and local_rank is not None else torch.device(device)
    if precision == "auto":
        if dev.type == "cuda":
            precision = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        else:
            precision = "fp32"
    if precision == "fp16" and dev.type != "cuda":
        raise TlfError("--precision fp16 needs a CUDA device", hint="use --precision bf16 or fp32 on the CPU")
    amp = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
    if dev.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    return Placement(dev, precision, amp)
