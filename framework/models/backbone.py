"""Backbones: a pretrained feature extractor cut into five named stages.

Every backbone exposes ``conv1``..``conv5``: the layers whose output has stride
2, 4, 8, 16 and 32 (ConvNeXt's 4x4 stem makes ``conv1`` stride 4). Native module
names (``layer3``, ``block2``, ``features_7``...) are aliases of the stage they sit in.
"""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping

import torch
from torch import nn

from ..errors import TlfError

STAGES = ("conv1", "conv2", "conv3", "conv4", "conv5")


@dataclass(frozen=True)
class BackboneRequest:
    """What the user asked of a backbone plugin (besides the ``name:ARG`` argument)."""

    pretrained: bool = True  # load the family's pretrained weights
    weights: Path | None = None  # a local weights file; used instead of the family's weights


@dataclass(frozen=True)
class BackboneMeta:
    """How a backbone wants its input, and which weights it holds."""

    name: str  # as written by the user, e.g. "resnet50" or "timm:resnet18"
    image_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    interpolation: str  # "bilinear" | "bicubic" | "nearest"
    crop_pct: float  # eval: resize the short side to image_size / crop_pct, then center-crop
    feature_dim: int  # channels of conv5's output
    weights: str | None  # the source actually loaded; None = random init


def sequential(modules: Iterable[tuple[str, nn.Module]]) -> nn.Sequential:
    """An ``nn.Sequential`` of ``(native name, module)`` pairs, ``'.'`` written as ``'_'``."""
    return nn.Sequential(OrderedDict((name.replace(".", "_"), module) for name, module in modules))


class Backbone(nn.Module):
    """Five stages ``conv1``..``conv5`` in an ``nn.Sequential``; ``forward`` returns conv5's map.

    ``pre_logits`` is what the pretrained model applied to the pooled features before
    its classifier (ConvNeXt's LayerNorm; ``nn.Identity`` elsewhere); the default head
    takes it over.
    """

    def __init__(self, stages: Mapping[str, nn.Module], meta: BackboneMeta,
                 aliases: Mapping[str, str] | None = None, pre_logits: nn.Module | None = None) -> None:
        super().__init__()
        if tuple(stages) != STAGES:
            raise ValueError(f"a backbone needs stages {STAGES}, got {tuple(stages)}")
        self.stages = nn.Sequential(OrderedDict(stages))
        self.meta = meta
        self.pre_logits = pre_logits if pre_logits is not None else nn.Identity()
        # the family's own aliases first (block3, stage2...), then every native child name
        named = dict(aliases or {})
        for stage_name, stage in self.stages.named_children():
            for child in stage._modules:
                named.setdefault(child, stage_name)
        self.aliases: dict[str, str] = {k: v for k, v in named.items() if k not in STAGES}

    @property
    def stage_names(self) -> tuple[str, ...]:
        return STAGES

    def resolve_stage(self, name: str) -> str:
        """``"conv4"``, ``"layer3"`` or ``"4"`` -> ``"conv4"``; unknown names raise :class:`TlfError`."""
        key = name.strip()
        if key in STAGES:
            return key
        if key.isdigit() and f"conv{key}" in STAGES:
            return f"conv{key}"
        if key in self.aliases:
            return self.aliases[key]
        by_stage: dict[str, list[str]] = {s: [] for s in STAGES}
        for alias, stage in self.aliases.items():
            by_stage[stage].append(alias)
        listing = "; ".join(f"{s} ({', '.join(a[:6])}{', ...' if len(a) > 6 else ''})" if a else s
                            for s, a in by_stage.items())
        raise TlfError(f"backbone {self.meta.name!r} has no stage {name!r}",
                       hint=f"valid stages (native aliases in brackets): {listing}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.stages(x)
