"""What ``tlf inspect`` shows: a backbone's stages with output shapes, parameters and frozen state."""
from __future__ import annotations

from typing import Any

import torch

from .models import build_model, count_params
from .policies import build_policy
from .setting_checks import RANGES, Range, check_value


def _state(total: int, trainable: int, frozen: bool) -> str:
    if total == 0:
        return "-"
    if not frozen:
        return "trainable" if trainable == total else "partly frozen"
    return "frozen" if trainable == 0 else "norm only"  # train_bn: frozen but for norm affine params


def inspect_model(backbone: str, policy: str | None = None, image_size: int | None = None, num_classes: int = 10,
                  head: str = "linear", pretrained: bool = False, train_bn: bool = False,
                  weights: str | None = None, pooling: str | None = None) -> dict:
    """The data behind ``tlf inspect``: one row per stage plus the head and totals."""
    image_size = check_value("image_size", image_size, int | None, RANGES["image_size"])
    num_classes = check_value("num_classes", num_classes, int, Range(1))
    freeze_policy = build_policy(policy, train_bn) if policy else None
    model = build_model(backbone, num_classes, pretrained=pretrained, weights=weights, head=head,
                        image_size=image_size, pooling=pooling)
    if freeze_policy is not None:
        freeze_policy.apply(model)
    meta = model.backbone.meta
    size = image_size or meta.image_size
    model.eval()
    by_stage: dict[str, list[str]] = {}
    for alias, stage in model.backbone.aliases.items():
        by_stage.setdefault(stage, []).append(alias)
    rows = []
    x = torch.zeros(1, 3, size, size)
    with torch.no_grad():
        for name, stage in model.backbone.stages.named_children():
            x = stage(x)
            total, trainable = count_params(stage)
            rows.append({"name": name, "aliases": by_stage.get(name, []), "output_shape": list(x.shape[1:]),
                         "params": total, "trainable": trainable,
                         "state": _state(total, trainable, name in model.frozen_stages)})
        logits = model.head(x)
    total, trainable = count_params(model.head)
    head_row = {"name": "head", "kind": head, "output_shape": list(logits.shape[1:]), "params": total,
                "trainable": trainable, "state": _state(total, trainable, False)}
    total, trainable = count_params(model)
    return {
        "backbone": meta.name, "policy": freeze_policy.name if freeze_policy else None,
        "policy_defaults": freeze_policy.defaults if freeze_policy else None,
        "image_size": size, "num_classes": num_classes, "weights": meta.weights,
        "contract": model.backbone.contract, "tokens": _tokens(model, size),
        "meta": {"mean": list(meta.mean), "std": list(meta.std), "interpolation": meta.interpolation,
                 "crop_pct": meta.crop_pct, "feature_dim": meta.feature_dim, "default_image_size": meta.image_size},
        "stages": rows, "head": head_row,
        "totals": {"params": total, "trainable": trainable, "frozen": total - trainable},
    }


def _tokens(model: Any, size: int) -> dict | None:
    """A columnar backbone's token layout at ``size`` px and its head's pooling; None for CNNs."""
    tokens = model.backbone.tokens
    if tokens is None:
        return None
    grid = size // tokens.patch
    return {"prefix": tokens.prefix, "class_token": tokens.class_token, "patch": tokens.patch,
            "grid": [grid, grid], "pooling": model.head.pool.mode, "recipe_pooling": tokens.pooling}
