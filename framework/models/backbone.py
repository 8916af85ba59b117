"""Backbones: a pretrained feature extractor cut into named stages, by one of two contracts.

- **pyramid** (CNNs): ``conv1``..``conv5``, the layers whose output has stride 2, 4, 8, 16
  and 32 (ConvNeXt's 4x4 stem makes ``conv1`` stride 4); ``forward`` returns conv5's map.
- **columnar** (ViTs: tokens keep one stride from the first block to the last): ``embed``
  (patch embedding, class/register tokens, positional embedding) then ``block1``..``blockN``
  (the last one ends with the final norm); ``forward`` returns the tokens (B x tokens x C).

Native module names (``layer3``, ``block2``, ``features_7``...) are aliases of the stage
they sit in; ``lastK`` names the first of the last K stages on either contract.
"""
from __future__ import annotations

import re
from collections import OrderedDict
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Iterable, Mapping

import torch
from torch import nn

from ..errors import TlfError
from ..preprocessing import BackboneFacts

STAGES = ("conv1", "conv2", "conv3", "conv4", "conv5")  # the pyramid contract's stages
LAST = re.compile(r"last(\d+)")


def columnar_stages(blocks: int) -> tuple[str, ...]:
    """The columnar contract's stage names for ``blocks`` transformer blocks."""
    return ("embed", *(f"block{i}" for i in range(1, blocks + 1)))


@dataclass(frozen=True)
class BackboneRequest:
    """What the user asked of a backbone plugin (besides the ``name:ARG`` argument)."""

    pretrained: bool = True  # load the family's pretrained weights
    weights: Path | None = None  # a local weights file; used instead of the family's weights


@dataclass(frozen=True)
class BackboneMeta(BackboneFacts):
    """How a backbone wants its input (its :class:`~tlf.preprocessing.BackboneFacts`, from the
    same source as its spec's), and what the model built is: its name, feature dimension and weights."""

    name: str  # as written by the user, e.g. "resnet50" or "timm:resnet18"
    feature_dim: int  # channels of conv5's output (columnar: the token width)
    weights: str | None  # the source actually loaded; None = random init

    @classmethod
    def of(cls, facts: BackboneFacts, *, name: str, feature_dim: int, weights: str | None) -> BackboneMeta:
        """The meta of a model built from a spec that states ``facts``."""
        return cls(**{f.name: getattr(facts, f.name) for f in fields(BackboneFacts)}, name=name,
                   feature_dim=feature_dim, weights=weights)


@dataclass(frozen=True)
class Tokens:
    """How a columnar backbone's output tokens are laid out and pooled by default."""

    prefix: int  # leading non-patch tokens: class token, distillation token, register tokens
    class_token: bool  # the first token is a class token
    patch: int  # patch size in pixels: the patch tokens form an (H / patch) x (W / patch) grid
    pooling: str  # the pretrained recipe's: "cls", "mean" or "cls+mean"


def sequential(modules: Iterable[tuple[str, nn.Module]]) -> nn.Sequential:
    """An ``nn.Sequential`` of ``(native name, module)`` pairs, ``'.'`` written as ``'_'``."""
    return nn.Sequential(OrderedDict((name.replace(".", "_"), module) for name, module in modules))


class Backbone(nn.Module):
    """Named stages in an ``nn.Sequential``: ``conv1``..``conv5`` (pyramid) or ``embed``,
    ``block1``..``blockN`` (columnar, with ``tokens`` set); ``forward`` runs them all.

    ``pre_logits`` is what the pretrained model applied to the pooled features before
    its classifier (ConvNeXt's LayerNorm, a ViT's ``fc_norm``; ``nn.Identity`` elsewhere);
    the default head takes it over.
    """

    def __init__(self, stages: Mapping[str, nn.Module], meta: BackboneMeta,
                 aliases: Mapping[str, str] | None = None, pre_logits: nn.Module | None = None,
                 tokens: Tokens | None = None) -> None:
        super().__init__()
        names = tuple(stages)
        expected = STAGES if tokens is None else columnar_stages(len(names) - 1)
        if names != expected or len(names) < 2:
            what = "a pyramid backbone needs" if tokens is None else "a columnar backbone (tokens set) needs"
            raise ValueError(f"{what} stages {expected}, got {names}")
        self.stages = nn.Sequential(OrderedDict(stages))
        self.meta = meta
        self.tokens = tokens
        self.pre_logits = pre_logits if pre_logits is not None else nn.Identity()
        # the family's own aliases first (block3, stage2...), then every native child name
        named = dict(aliases or {})
        for stage_name, stage in self.stages.named_children():
            for child in stage._modules:
                named.setdefault(child, stage_name)
        self.aliases: dict[str, str] = {k: v for k, v in named.items() if k not in names}

    @property
    def stage_names(self) -> tuple[str, ...]:
        return tuple(self.stages._modules)

    @property
    def contract(self) -> str:
        """``"pyramid"`` or ``"columnar"``."""
        return "pyramid" if self.tokens is None else "columnar"

    def resolve_stage(self, name: str) -> str:
        """A stage name, alias, 1-based block/conv number or ``lastK`` -> the stage's name
        (``"layer3"`` -> ``"conv4"``, ``"last4"`` -> ``"block9"`` on 12 blocks); unknown names
        raise :class:`TlfError` listing the valid ones."""
        key = name.strip()
        names = self.stage_names
        numbered = f"conv{key}" if self.tokens is None else f"block{key}"
        last = LAST.fullmatch(key)
        if key in names:
            return key
        if key.isdigit() and numbered in names:
            return numbered
        if last and 1 <= int(last.group(1)) <= len(names):
            return names[-int(last.group(1))]
        if key in self.aliases:
            return self.aliases[key]
        raise TlfError(f"backbone {self.meta.name!r} has no stage {name!r}", hint=self._listing())

    def _listing(self) -> str:
        """The valid stage names, for errors."""
        names = self.stage_names
        if self.tokens is not None:
            return (f"valid stages: embed, block1..block{len(names) - 1} (or 1..{len(names) - 1}), "
                    f"lastK for the last K stages (K = 1..{len(names)}), e.g. partial:last4")
        by_stage: dict[str, list[str]] = {s: [] for s in names}
        for alias, stage in self.aliases.items():
            by_stage[stage].append(alias)
        listing = "; ".join(f"{s} ({', '.join(a[:6])}{', ...' if len(a) > 6 else ''})" if a else s
                            for s, a in by_stage.items())
        return f"valid stages (native aliases in brackets): {listing}"

    def check_image_size(self, size: int) -> None:
        """A one-line :class:`TlfError` when a columnar backbone cannot take ``size`` px inputs
        (the patch grid must tile the image; the positional embedding is interpolated to it)."""
        if self.tokens is None or size % self.tokens.patch == 0:
            return
        patch = self.tokens.patch
        lower, upper = max(patch, size // patch * patch), (size // patch + 1) * patch
        raise TlfError(f"backbone {self.meta.name!r} cuts images into {patch} px patches, so it cannot take "
                       f"{size} px images", hint=f"use --image-size {lower} or {upper} (a multiple of {patch})")

    def token_map(self, tokens: torch.Tensor, height: int, width: int) -> torch.Tensor:
        """The patch tokens (B x tokens x C, prefix tokens dropped) of an ``height`` x ``width``
        input as a B x C x h x w map on their grid."""
        assert self.tokens is not None, "token_map is for columnar backbones"
        grid = (height // self.tokens.patch, width // self.tokens.patch)
        patches = tokens[:, self.tokens.prefix:]
        return patches.transpose(1, 2).reshape(patches.shape[0], patches.shape[2], *grid)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.stages(x)
