"""Classification heads put on a backbone's output: conv5's feature map, or a columnar
backbone's tokens (pooled by :class:`TokenPool`)."""
from __future__ import annotations

import torch
from torch import nn

from ..errors import TlfError


class TokenPool(nn.Module):
    """Tokens (B x tokens x C) -> the class token, the mean of the patch tokens (the ``prefix``
    class/register tokens left out), or both concatenated (B x 2C: DINOv2's linear probe).

    Already pooled features (B x features, as the feature cache stores them) pass through, as
    ``AdaptiveAvgPool2d(1)`` leaves a 1x1 map unchanged. No parameters: it may run in the frozen
    prefix."""

    def __init__(self, mode: str, prefix: int) -> None:
        super().__init__()
        self.mode = mode
        self.prefix = prefix

    def extra_repr(self) -> str:
        return f"mode={self.mode!r}, prefix={self.prefix}"

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        if tokens.dim() == 2:
            return tokens
        parts = []
        if self.mode in ("cls", "cls+mean"):
            parts.append(tokens[:, 0])
        if self.mode in ("mean", "cls+mean"):
            parts.append(tokens[:, self.prefix:].mean(dim=1))
        return torch.cat(parts, dim=1) if len(parts) > 1 else parts[0]


class PerToken(nn.Module):
    """``norm`` (over C) applied to each C-wide part of pooled features (``cls+mean``: 2 parts)."""

    def __init__(self, norm: nn.Module, width: int) -> None:
        super().__init__()
        self.norm = norm
        self.width = width

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        return self.norm(pooled.unflatten(1, (-1, self.width))).flatten(1)


class LinearHead(nn.Module):
    """Pool (global average, or :class:`TokenPool`) -> (the backbone's pre-logits norm) -> dropout -> linear."""

    def __init__(self, in_features: int, num_classes: int, dropout: float = 0.2,
                 norm: nn.Module | None = None, pool: nn.Module | None = None) -> None:
        super().__init__()
        self.pool = pool if pool is not None else nn.AdaptiveAvgPool2d(1)
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


def token_head(pooling: str, prefix: int, width: int, num_classes: int, dropout: float,
               norm: nn.Module | None = None) -> LinearHead:
    """A linear head on ``width``-wide tokens pooled by ``pooling`` (:data:`POOLINGS`); ``norm``
    (the backbone's pre-logits norm over one token) applies to each pooled part."""
    parts = 2 if pooling == "cls+mean" else 1
    per_part = PerToken(norm, width) if parts > 1 and norm is not None and not isinstance(norm, nn.Identity) else norm
    return LinearHead(width * parts, num_classes, dropout, per_part, TokenPool(pooling, prefix))
