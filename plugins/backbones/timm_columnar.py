"""timm's columnar models (ViT, DeiT, DINOv2, CLIP and SigLIP image towers: timm's
``VisionTransformer`` family) cut into stages ``embed``, ``block1``..``blockN``.

``embed`` is the patch embedding, class/register tokens and positional embedding (run by
the model's own ``_pos_embed``), ``blockK`` is ``blocks[K-1]``; the last block stage ends with
the final ``norm``. The model is built with ``dynamic_img_size=True``, so its positional
embedding is interpolated to any image size whose side is a multiple of the patch size. The
pretrained pooling (``global_pool``) picks the default head pooling: ``token`` -> the class
token, DINOv2's -> class token and patch mean concatenated (its linear-probe recipe), anything
else (``avg``, SigLIP's attention pool ``map``) -> the patch mean. ``fc_norm`` becomes the
head's pre-logits norm. The cut is checked against ``forward_features`` on a probe input.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from tlf.errors import TlfError
from tlf.models import Tokens, sequential

EMBED_MODULES = ("patch_embed", "pos_drop", "patch_drop", "norm_pre")


def is_columnar(model: nn.Module) -> bool:
    """A timm model with a patch embedding, ``_pos_embed`` and its blocks in an ``nn.Sequential``
    (each block takes and returns the tokens alone)."""
    return all(hasattr(model, name) for name in ("patch_embed", "_pos_embed", "num_prefix_tokens")) \
        and isinstance(getattr(model, "blocks", None), nn.Sequential)


class Embed(nn.Module):
    """A timm ViT's embedding, run by the model's own code: ``patch_embed`` -> its class's
    ``_pos_embed`` (class, distillation and register tokens; positional embedding, interpolated
    with ``dynamic_img_size``) -> ``patch_drop`` -> ``norm_pre``. It holds only the embedding's
    modules, parameters and settings, so its state dict is the embedding's."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self._pos_embed_of = type(model)._pos_embed
        for name, value in vars(model).items():  # plain settings _pos_embed reads (dynamic_img_size, ...)
            if not name.startswith("_") and not isinstance(value, (nn.Module, torch.Tensor)):
                setattr(self, name, value)
        for name, param in model._parameters.items():  # cls_token, reg_token, pos_embed, dist_token
            self.register_parameter(name, param)
        for name in EMBED_MODULES:
            setattr(self, name, getattr(model, name))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self._pos_embed_of(self, self.patch_embed(x))
        return self.norm_pre(self.patch_drop(x))


def split(model: nn.Module) -> dict[str, nn.Sequential]:
    """``model`` cut into ``embed``, ``block1``..``blockN`` (the last with the final norm)."""
    blocks = list(model.blocks.named_children())
    stages = {"embed": sequential([("embed", Embed(model))])}
    for k, (index, block) in enumerate(blocks, 1):
        tail = [("norm", model.norm)] if k == len(blocks) else []
        stages[f"block{k}"] = sequential([(f"blocks.{index}", block), *tail])
    return stages


def default_pooling(model: nn.Module) -> str:
    """The head pooling of the pretrained recipe."""
    if getattr(model, "global_pool", "") != "token" or not model.has_class_token:
        return "mean"
    return "cls+mean" if "dinov2" in model.pretrained_cfg.get("architecture", "") else "cls"


def check(model: nn.Module, stages: dict[str, nn.Sequential], name: str) -> Tokens:
    """The stages must compute ``forward_features`` on a probe whose tokens form a square grid of
    patches; the token layout. :class:`TlfError` when they do not (a hybrid it cannot cut)."""
    patch = model.patch_embed.patch_size
    side = 4 * int(patch[0]) if isinstance(patch, (tuple, list)) else 4 * int(patch)
    prefix = int(model.num_prefix_tokens)
    if any(p.is_meta for p in model.parameters()):  # the plan's stage check: names only, nothing to run
        return Tokens(prefix=prefix, class_token=bool(model.has_class_token), patch=side // 4,
                      pooling=default_pooling(model))
    model.eval()
    probe = torch.randn(1, 3, side, side, generator=torch.Generator().manual_seed(0))
    try:
        with torch.no_grad():
            expected = model.forward_features(probe)
            got = nn.Sequential(*stages.values())(probe)
    except Exception:  # e.g. a hybrid whose CNN stem cannot take a 4-patch probe: no patch grid either
        expected = got = torch.zeros(0)
    model.train()
    if got.dim() != 3 or got.shape != expected.shape or got.shape[1] - prefix != 16 \
            or not torch.allclose(got, expected, atol=1e-5, rtol=1e-4):
        raise TlfError(f"timm model {name!r} does not run as patch embedding + blocks on a patch grid, so it "
                       f"cannot be cut into stages embed, block1..blockN",
                       hint="pick a ViT-style timm model (vit_*, deit_*, *_dinov2, *_clip_*, *_siglip_*) or a CNN")
    return Tokens(prefix=prefix, class_token=bool(model.has_class_token), patch=side // 4,
                  pooling=default_pooling(model))


def columnar(model: nn.Module, name: str) -> tuple[dict[str, nn.Sequential], dict[str, Any]]:
    """The stages of a columnar timm model and the :class:`tlf.models.Backbone` keyword arguments
    that go with them (``tokens``, ``pre_logits``)."""
    stages = split(model)
    tokens = check(model, stages, name)
    fc_norm = getattr(model, "fc_norm", None)
    pre_logits = fc_norm if isinstance(fc_norm, nn.Module) and not isinstance(fc_norm, nn.Identity) else None
    return stages, {"tokens": tokens, "pre_logits": pre_logits}
