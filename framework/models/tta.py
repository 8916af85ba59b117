"""Test-time augmentation: a classifier wrapped to average its predictions over views.

The wrapper's output is ``log(mean over views of softmax(logits))``: a logit vector whose
softmax is the averaged probabilities, so evaluation, export and ``tlf.runtime`` use it
as they use plain logits. For a sigmoid head (multi-label) it is the logit of each class's
mean probability, ``log(mean p) - log(mean (1 - p))``, whose sigmoid is that mean. Written as a module (not a loop in the evaluator) so that
``tlf export --tta flip`` puts the averaging into the ONNX graph.
"""
from __future__ import annotations

import math

import torch
from torch import nn

TTA_MODES = ("none", "flip", "flip+crops")


def _average(model: nn.Module, views: list[torch.Tensor], activation: str = "softmax") -> torch.Tensor:
    logits = [model(v).float() for v in views]
    if activation == "sigmoid":
        positive = torch.logsumexp(torch.stack([nn.functional.logsigmoid(z) for z in logits]), dim=0)
        negative = torch.logsumexp(torch.stack([nn.functional.logsigmoid(-z) for z in logits]), dim=0)
        return positive - negative  # the views' count cancels out
    logs = torch.stack([torch.log_softmax(z, dim=1) for z in logits])
    return torch.logsumexp(logs, dim=0) - math.log(len(views))


class FlipAverage(nn.Module):
    """The image and its mirror image (left-right)."""

    def __init__(self, model: nn.Module, activation: str = "softmax") -> None:
        super().__init__()
        self.model = model
        self.activation = activation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _average(self.model, [x, torch.flip(x, dims=[3])], self.activation)


class CropFlipAverage(nn.Module):
    """Ten views of a larger input: its centre and four corner ``size`` crops of it and of its
    mirror image (torchvision's ``ten_crop``). The input is the eval view before its centre crop."""

    def __init__(self, model: nn.Module, size: int, activation: str = "softmax") -> None:
        super().__init__()
        self.model = model
        self.size = size
        self.activation = activation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        from torchvision.transforms.v2.functional import ten_crop
        return _average(self.model, list(ten_crop(x, [self.size, self.size])), self.activation)


def with_tta(model: nn.Module, mode: str, size: int, activation: str = "softmax") -> nn.Module:
    """``model`` wrapped for ``mode`` (``none``: as it is), averaging the probabilities of the task's
    ``activation`` (``softmax``; ``sigmoid``: each class's)."""
    if mode == "flip":
        return FlipAverage(model, activation)
    if mode == "flip+crops":
        return CropFlipAverage(model, size, activation)
    return model
