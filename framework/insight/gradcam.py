"""Grad-CAM (Selvaraju et al., 2017) on ``conv5``, or on a ViT's token grid, for every backbone plugin.

Written here rather than taken from the ``grad-cam`` package: by the stage contract a
:class:`tlf.models.Classifier` is ``head(stages(x))``, so Grad-CAM is one forward pass of the
stages up to its layer (no gradients), one of the rest with their output as a leaf tensor, and
one ``autograd.grad`` — no module hooks, no layer names per family, no extra dependencies
(``grad-cam`` brings ttach, scikit-learn and tqdm, and needs a target layer named per
architecture). Third-party backbones get it for free.

The layer: conv5's map on a CNN; on a columnar backbone (ViT) its output tokens, the patch tokens
reshaped to their grid, or with a head that reads the class token the tokens entering the last
block (the ``grad-cam`` package's choice for ViTs): after the last block such a head takes no
gradient from the patch tokens.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn


def grad_cam(model: nn.Module, x: torch.Tensor, target: torch.Tensor | None = None) -> tuple[np.ndarray, torch.Tensor]:
    """Heat maps (N x H x W float32 in [0, 1], at the input's size) of ``target`` classes
    (default: the predicted ones) and the model's logits for ``x`` (normalized model input)."""
    model.eval()
    backbone = model.backbone
    stages = list(backbone.stages.children())
    reads_class_token = backbone.tokens is not None and "cls" in getattr(model.head.pool, "mode", "")
    cut = len(stages) - reads_class_token  # a class-token head: before the last block
    with torch.no_grad():
        features = nn.Sequential(*stages[:cut])(x).float()
    features.requires_grad_(True)
    with torch.enable_grad():
        logits = model.head(nn.Sequential(*stages[cut:])(features))
        classes = logits.argmax(1) if target is None else target.to(logits.device)
        score = logits.gather(1, classes.view(-1, 1)).sum()
        (grads,) = torch.autograd.grad(score, features)
    if backbone.tokens is not None:  # tokens -> maps on the patch grid
        features, grads = (backbone.token_map(t, *x.shape[-2:]) for t in (features, grads))
    weights = grads.mean(dim=(2, 3), keepdim=True)  # global-average-pooled gradients, one per channel
    cam = torch.relu((weights * features.detach()).sum(dim=1, keepdim=True))
    cam = nn.functional.interpolate(cam, size=x.shape[-2:], mode="bilinear", align_corners=False)[:, 0]
    peak = cam.flatten(1).max(dim=1).values.clamp_min(1e-12).view(-1, 1, 1)
    return (cam / peak).cpu().numpy().astype(np.float32), logits.detach().cpu()


def overlay(image: np.ndarray, cam: np.ndarray, alpha: float = 0.45) -> np.ndarray:
    """``image`` (HxWx3 uint8) blended with the heat map in matplotlib's ``jet`` colours."""
    from matplotlib import colormaps
    heat = colormaps["jet"](cam)[..., :3] * 255.0
    return np.clip((1 - alpha) * image.astype(np.float32) + alpha * heat, 0, 255).astype(np.uint8)
