"""Shared helpers for the model tests: cached random-init models (copied per test)."""
from __future__ import annotations

import copy
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from tlf.models import Classifier, build_model


@lru_cache(maxsize=None)
def _cached(backbone: str, num_classes: int, head: str) -> Classifier:
    """Built from seed 0 whichever test asks first (the weights must not depend on the order tests run
    in, nor consume the caller's random numbers)."""
    with torch.random.fork_rng():
        torch.manual_seed(0)
        return build_model(backbone, num_classes, pretrained=False, head=head, image_size=32)


def model(backbone: str, num_classes: int = 3, head: str = "linear") -> Classifier:
    """A fresh copy of a random-init model (building once per session keeps the tests fast)."""
    return copy.deepcopy(_cached(backbone, num_classes, head))


def marked_cams(run_dir: Path, data: Path) -> np.ndarray:
    """Grad-CAM maps (N x H x W) of class 'marked' on the run's view of ``data``'s validation
    images of that class (tests/imagefiles.py: ``marked_square_folder``)."""
    from PIL import Image

    from tlf.insight.explain import Explainer
    from tlf.insight.gradcam import grad_cam
    explainer = Explainer(run_dir, device="cpu")
    views = [explainer.pipeline.eval_transform(np.asarray(Image.open(p).convert("RGB")), None)
             for p in sorted((data / "val" / "marked").glob("*.png"))]
    cam, _ = grad_cam(explainer.model, torch.cat([explainer._input(v) for v in views]),
                      torch.tensor([explainer.run.classes.index("marked")] * len(views)))
    return cam
