"""Grad-CAM (Selvaraju et al., 2017) on ``conv5``, for every backbone plugin.

Written here rather than taken from the ``grad-cam`` package: by the stage contract a
:class:`tlf.models.Classifier` is ``head(backbone(x))`` and ``backbone(x)`` *is* conv5's
feature map, so Grad-CAM is one forward pass of the backbone (no gradients), one of the head
with the map as a leaf tensor, and one ``autograd.grad`` — no module hooks, no layer names
per family, no extra dependencies (``grad-cam`` brings ttach, scikit-learn and tqdm, and needs
a target layer named per architecture). Third-party backbones get it for free.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn


def grad_cam(model: nn.Module, x: torch.Tensor, target: torch.Tensor | None = None) -> tuple[np.ndarray, torch.Tensor]:
    """Heat maps (N x H x W float32 in [0, 1], at the input's size) of ``target`` classes
    (default: the predicted ones) and the model's logits for ``x`` (normalized model input)."""
    model.eval()
    with torch.no_grad():
        features = model.backbone(x).float()
    features.requires_grad_(True)
    with torch.enable_grad():
        logits = model.head(features)
        classes = logits.argmax(1) if target is None else target.to(logits.device)
        score = logits.gather(1, classes.view(-1, 1)).sum()
        (grads,) = torch.autograd.grad(score, features)
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
