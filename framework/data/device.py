"""From uint8 batches to model input, on the device: transfer, float, /255, normalize.

Loaders ship uint8 (4x fewer bytes than float32 through worker queues, pinned memory and
PCIe); the arithmetic runs where the model runs.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Any, Callable, Sequence

import torch


@lru_cache(maxsize=16)
def _affine(mean: tuple[float, ...], std: tuple[float, ...], device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """(255*mean, 1/(255*std)) as 1x3x1x1 float32 tensors on ``device``."""
    m = torch.tensor([255.0 * v for v in mean], dtype=torch.float32).view(1, -1, 1, 1)
    s = torch.tensor([1.0 / (255.0 * v) for v in std], dtype=torch.float32).view(1, -1, 1, 1)
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


class DeviceBatch:
    """Turns loader batches into model input and targets; applies the batch augmentation
    (mixup/cutmix) on the device when training."""

    def __init__(self, mean: Sequence[float], std: Sequence[float], device: torch.device | str,
                 channels_last: bool = True, dtype: torch.dtype | None = None,
                 batch_augment: Callable[..., Any] | None = None) -> None:
        self.mean, self.std = tuple(mean), tuple(std)
        self.device = torch.device(device)
        self.channels_last = channels_last
        self.dtype = dtype
        self.batch_augment = batch_augment

    def __call__(self, images: torch.Tensor, labels: torch.Tensor, train: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """``(x, y)``: y is int64 labels, or soft float targets when a batch augmentation ran."""
        x = to_model_input(images, self.mean, self.std, self.device, self.channels_last)
        y = labels.to(self.device, non_blocking=True)
        if train and self.batch_augment is not None:
            x, y = self.batch_augment(x, y)
        if self.dtype is not None and self.dtype != torch.float32:
            x = x.to(self.dtype)
        return x, y
