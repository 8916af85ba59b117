"""Classification heads put on a backbone's conv5 feature map."""
from __future__ import annotations

import torch
from torch import nn

from ..errors import TlfError


class LinearHead(nn.Module):
    """Global average pool -> (the backbone's pre-logits norm) -> dropout -> linear."""

    def __init__(self, in_features: int, num_classes: int, dropout: float = 0.2,
                 norm: nn.Module | None = None) -> None:
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.norm = norm if norm is not None else nn.Identity()
        self.flatten = nn.Flatten(1)
        self.drop = nn.Dropout(dropout)
        self.fc = nn.Linear(in_features, num_classes)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.fc(self.drop(self.flatten(self.norm(self.pool(features)))))


class MlpHead(nn.Module):
    """The course's head: flatten the feature map -> Linear(512) + ReLU -> dropout -> Linear(C).

    Its size depends on the feature map's, so on the input size it was built for.
    """

    def __init__(self, in_features: int, num_classes: int, dropout: float = 0.2, hidden: int = 512) -> None:
        super().__init__()
        self.flatten = nn.Flatten(1)
        self.fc1 = nn.Linear(in_features, hidden)
        self.act = nn.ReLU(inplace=True)
        self.drop = nn.Dropout(dropout)
        self.fc2 = nn.Linear(hidden, num_classes)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.drop(self.act(self.fc1(self.flatten(features)))))


HEADS = ("linear", "mlp")


def build_head(kind: str, feature_shape: tuple[int, int, int], num_classes: int, dropout: float,
               norm: nn.Module | None = None) -> nn.Module:
    """A head for conv5 maps of ``feature_shape`` (C, h, w)."""
    channels, height, width = feature_shape
    if kind == "linear":
        return LinearHead(channels, num_classes, dropout, norm)
    if kind == "mlp":
        return MlpHead(channels * height * width, num_classes, dropout)
    raise TlfError(f"unknown head {kind!r}", hint=f"choose one of: {', '.join(HEADS)}")
