"""The ``stripes`` dataset: horizontal vs vertical stripes, generated in memory."""
from __future__ import annotations

import numpy as np

from tlf.data import ArrayImageSet, DatasetRequest, Splits
from tlf.errors import TlfError

CLASSES = ["horizontal", "vertical"]
SIZE = 32
DEFAULT_PER_CLASS = 100


def stripe_images(per_class: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``2 * per_class`` RGB uint8 images (SIZE x SIZE) with random colours, stripe widths
    and phases; label 0 = horizontal stripes, 1 = vertical."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(len(CLASSES)), per_class)
    images = np.empty((len(labels), SIZE, SIZE, 3), dtype=np.uint8)
    coords = np.arange(SIZE)
    for i, label in enumerate(labels):
        width = rng.integers(2, 6)
        on = ((coords + rng.integers(0, 2 * width)) // width) % 2 == 0  # one row/column pattern
        mask = np.broadcast_to(on[:, None] if label == 0 else on[None, :], (SIZE, SIZE))
        dark, light = rng.integers(0, 100, 3), rng.integers(155, 256, 3)
        image = np.where(mask[..., None], light, dark) + rng.normal(0, 12, (SIZE, SIZE, 3))
        images[i] = np.clip(image, 0, 255).astype(np.uint8)
    return images, labels


def make_stripes(argument: str | None, request: DatasetRequest) -> Splits:
    """``stripes[:N]``: N images per class (default 100), split by ``request.val_split``."""
    try:
        per_class = int(argument) if argument else DEFAULT_PER_CLASS
    except ValueError:
        per_class = 0
    if per_class < 2:
        raise TlfError(f"stripes needs a number of images per class >= 2, got {argument!r}", hint="e.g. stripes:200")
    images, labels = stripe_images(per_class)
    rng = np.random.default_rng(request.seed)
    val = np.zeros(len(labels), dtype=bool)
    n_val = min(per_class - 1, max(1, round(per_class * request.val_split)))
    for label in range(len(CLASSES)):  # stratified: the same share of each class in val
        val[rng.permutation(np.flatnonzero(labels == label))[:n_val]] = True
    name = f"stripes:{per_class}" if argument else "stripes"
    return Splits(
        name=name,
        classes=list(CLASSES),
        train=ArrayImageSet(images[~val], labels[~val], name=f"{name}/train"),
        val=ArrayImageSet(images[val], labels[val], name=f"{name}/val"),
    )
