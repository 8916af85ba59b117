"""Batch-level augmentations (mixup, cutmix) in torch, on whichever device the batch is on.

Mixing parameters (lambda, permutation, box) are drawn on the host from a seeded numpy
generator, so a run gives the same mixes on CPU and GPU.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from ..errors import TlfError


def soft_targets(y: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Class indices (N,) -> one-hot float (N, C); multi-hot (N, C) and soft targets as float:
    mixing two images mixes their label sets (a label present in both stays 1)."""
    if y.is_floating_point() or y.ndim == 2:
        return y.float()
    return torch.nn.functional.one_hot(y.long(), num_classes).float()


class _Mix:
    def __init__(self, alpha: float, num_classes: int, seed: int, name: str) -> None:
        if not alpha > 0 or not math.isfinite(alpha):
            raise TlfError(f"{name} alpha must be a positive number, got {alpha}", hint=f"e.g. '{name}:0.4'")
        if num_classes < 2:
            raise TlfError(f"{name} needs the number of classes (got {num_classes})",
                           hint="build the pipeline with AugmentRequest(num_classes=...)")
        self.alpha = alpha
        self.num_classes = num_classes
        self.rng = np.random.default_rng(seed)

    def _draw(self, n: int, device: torch.device) -> tuple[float, torch.Tensor]:
        lam = float(self.rng.beta(self.alpha, self.alpha))
        perm = torch.from_numpy(self.rng.permutation(n)).to(device, non_blocking=True)
        return lam, perm


class MixUp(_Mix):
    """``x = lam*x + (1-lam)*x[perm]``, targets mixed likewise (Zhang et al., 2018)."""

    def __init__(self, alpha: float, num_classes: int, seed: int = 0) -> None:
        super().__init__(alpha, num_classes, seed, "mixup")

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        lam, perm = self._draw(x.shape[0], x.device)
        y = soft_targets(y, self.num_classes).to(x.device)
        mixed = x.mul(lam).add_(x[perm], alpha=1.0 - lam)
        return mixed, y.mul(lam).add_(y[perm], alpha=1.0 - lam)


class CutMix(_Mix):
    """Pastes a random box from a shuffled batch; targets weighted by area (Yun et al., 2019)."""

    def __init__(self, alpha: float, num_classes: int, seed: int = 0) -> None:
        super().__init__(alpha, num_classes, seed, "cutmix")

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        lam, perm = self._draw(x.shape[0], x.device)
        h, w = x.shape[-2:]
        ratio = math.sqrt(1.0 - lam)
        cut_h, cut_w = int(h * ratio), int(w * ratio)
        cy, cx = int(self.rng.integers(h)), int(self.rng.integers(w))
        y1, y2 = max(cy - cut_h // 2, 0), min(cy + cut_h // 2, h)
        x1, x2 = max(cx - cut_w // 2, 0), min(cx + cut_w // 2, w)
        mixed = x.clone()
        mixed[:, :, y1:y2, x1:x2] = x[perm, :, y1:y2, x1:x2]
        kept = 1.0 - (y2 - y1) * (x2 - x1) / (h * w)  # the area actually left from each image
        y = soft_targets(y, self.num_classes).to(x.device)
        return mixed, y.mul(kept).add_(y[perm], alpha=1.0 - kept)
