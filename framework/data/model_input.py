"""From uint8 batches to model input, on the device: transfer, float, normalize.

Loaders ship uint8 (4x fewer bytes than float32 through worker queues, pinned memory and
PCIe); the arithmetic (:func:`tlf.preprocessing.affine`) runs where the model runs.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Sequence

import torch

from ..preprocessing import affine


@lru_cache(maxsize=16)
def _affine(mean: tuple[float, ...], std: tuple[float, ...], device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """The normalization's (offset, scale) as 1x3x1x1 float32 tensors on ``device``."""
    offset, scale = affine(mean, std)
    m = torch.tensor(offset, dtype=torch.float32).view(1, -1, 1, 1)
    s = torch.tensor(scale, dtype=torch.float32).view(1, -1, 1, 1)
    return m.to(device), s.to(device)


def to_model_input(images: torch.Tensor, mean: Sequence[float], std: Sequence[float], device: torch.device | str,
                   channels_last: bool = True, dtype: torch.dtype | None = None) -> torch.Tensor:
    """uint8 Nx3xHxW (any strides) -> normalized float NCHW on ``device``.

    The normalization runs in float32; ``dtype`` (e.g. ``torch.bfloat16``) is applied
    after it. ``channels_last`` returns NHWC memory format (faster convolutions on GPU).
    """
    device = torch.device(device)
    x = images.to(device, non_blocking=True)
    m, s = _affine(tuple(float(v) for v in mean), tuple(float(v) for v in std), device)
    if x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous():
        # loader batches are NHWC in memory: broadcast over the innermost dimension (faster on CPU)
        x = x.permute(0, 2, 3, 1).float().sub_(m.view(-1)).mul_(s.view(-1)).permute(0, 3, 1, 2)
    else:
        x = x.float().sub_(m).mul_(s)
    if dtype is not None and dtype != torch.float32:
        x = x.to(dtype)
    return x.contiguous(memory_format=torch.channels_last if channels_last else torch.contiguous_format)
