"""A backbone with a new head, and the freezing that policies rely on."""
from __future__ import annotations

from pathlib import Path
from typing import Iterable

import torch
from torch import nn

from ..errors import TlfError
from ..config import POOLINGS
from ..registry import get_registry
from .backbone import Backbone, BackboneRequest
from .heads import HEADS, build_head, token_head

NORMS = (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm)


def is_norm(module: nn.Module) -> bool:
    """BatchNorm / GroupNorm / LayerNorm (and subclasses such as LayerNorm2d, BatchNormAct2d)."""
    return isinstance(module, NORMS)


class Classifier(nn.Module):
    """``head(backbone(x))``. Frozen stages take no gradient and stay in eval mode
    (BatchNorm statistics untouched) through ``model.train()``, as in MMPretrain."""

    def __init__(self, backbone: Backbone, head: nn.Module, num_classes: int) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = head
        self.num_classes = num_classes
        self.frozen_stages: tuple[str, ...] = ()
        self.train_bn = False

    def freeze(self, stages: Iterable[str], train_bn: bool = False) -> None:
        """Freeze exactly ``stages`` (names or aliases); every other stage becomes trainable.

        ``train_bn``: norm layers of frozen stages keep trainable affine parameters (their
        running statistics stay frozen all the same).
        """
        frozen = {self.backbone.resolve_stage(s) for s in stages}
        self.frozen_stages = tuple(s for s in self.backbone.stage_names if s in frozen)
        self.train_bn = train_bn
        for name, stage in self.backbone.stages.named_children():
            for module in stage.modules():
                trainable = name not in frozen or (train_bn and is_norm(module))
                for param in module.parameters(recurse=False):
                    param.requires_grad_(trainable)
        self.train(self.training)

    def train(self, mode: bool = True) -> Classifier:
        super().train(mode)
        for name in self.frozen_stages:
            getattr(self.backbone.stages, name).eval()
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x))


def feature_shape(backbone: Backbone, image_size: int) -> tuple[int, int, int]:
    """(C, h, w) of conv5's output for a square input of ``image_size``."""
    was_training = backbone.training
    backbone.eval()
    with torch.no_grad():
        out = backbone(torch.zeros(1, 3, image_size, image_size))
    backbone.train(was_training)
    return tuple(out.shape[1:])


def build_model(backbone: str, num_classes: int, *, pretrained: bool, weights: Path | str | None = None,
                head: str = "linear", dropout: float = 0.2, image_size: int | None = None,
                pooling: str | None = None) -> Classifier:
    """Build backbone ``backbone`` (a registry name, e.g. ``"resnet50"`` or ``"timm:resnet18"``)
    with a new ``head`` for ``num_classes`` classes.

    ``weights`` (a local file) replaces the backbone's own pretrained weights.
    ``image_size`` only matters to the ``mlp`` head, whose size follows the feature map's, and
    to columnar backbones, whose patch grid must tile it. ``pooling`` (columnar backbones:
    ``cls``, ``mean`` or ``cls+mean``) overrides the backbone's recipe.
    """
    if num_classes < 1:
        raise TlfError(f"num_classes must be at least 1, got {num_classes}")
    if head not in HEADS:
        raise TlfError(f"unknown head {head!r}", hint=f"choose one of: {', '.join(HEADS)}")
    if pooling is not None and pooling not in POOLINGS:
        raise TlfError(f"unknown pooling {pooling!r}", hint=f"choose one of: {', '.join(POOLINGS)}")
    request = BackboneRequest(pretrained=pretrained, weights=Path(weights) if weights else None)
    spec, _ = get_registry().resolve("backbones", backbone)
    body: Backbone = get_registry().create("backbones", backbone, request)
    if body.contract not in spec.contracts:
        raise TlfError(f"backbone plugin {spec.name!r} ({spec.plugin or 'unknown package'}) built a {body.contract} "
                       f"backbone, but its spec declares {', '.join(spec.contracts)}",
                       hint="fix the plugin's BackboneSpec(contracts=...)")
    if image_size is not None:
        body.check_image_size(image_size)
    norm, body.pre_logits = body.pre_logits, nn.Identity()  # the linear head takes the pooled-feature norm over
    if body.tokens is not None:
        return Classifier(body, _token_head(body, head, pooling, num_classes, dropout, norm), num_classes)
    if pooling is not None:
        raise TlfError(f"--pooling {pooling} is for columnar backbones (ViTs); {body.meta.name!r} is a CNN",
                       hint="leave --pooling out (a CNN's head averages conv5's map)")
    if head == "mlp":
        return Classifier(body, build_head(head, feature_shape(body, image_size or body.meta.image_size),
                                           num_classes, dropout), num_classes)
    return Classifier(body, build_head(head, (body.meta.feature_dim, 1, 1), num_classes, dropout, norm), num_classes)


def _token_head(body: Backbone, head: str, pooling: str | None, num_classes: int, dropout: float,
                norm: nn.Module | None) -> nn.Module:
    """The linear head of a columnar backbone, its tokens pooled by ``pooling`` (default: the recipe's)."""
    name, tokens = body.meta.name, body.tokens
    if head != "linear":
        raise TlfError(f"head {head!r} flattens a conv5 map; {name!r} is a columnar backbone (ViT)",
                       hint="use --head linear (with --pooling cls, mean or cls+mean)")
    pooling = pooling or tokens.pooling
    if "cls" in pooling and not tokens.class_token:
        raise TlfError(f"backbone {name!r} has no class token, so it cannot pool with {pooling!r}",
                       hint="use --pooling mean")
    return token_head(pooling, tokens.prefix, body.meta.feature_dim, num_classes, dropout, norm)


def count_params(module: nn.Module) -> tuple[int, int]:
    """All parameters of ``module``, and the trainable ones."""
    total = trainable = 0
    for p in module.parameters():
        total += p.numel()
        trainable += p.numel() if p.requires_grad else 0
    return total, trainable
