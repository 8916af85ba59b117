"""Generated JPEG files in a class-per-folder tree: what the pipelines read when no ``--data`` is given.

Files, not arrays, so that tlf's loaders and the torchvision reference both decode real JPEGs."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

CLASSES = 4


def write_images(root: Path, count: int, size: int, seed: int = 0) -> Path:
    """``count`` smooth random colour JPEGs of ``size`` px (a little larger than the crop, as photos
    are), spread over :data:`CLASSES` class folders under ``root``; returns ``root``."""
    rng = np.random.default_rng(seed)
    for i in range(count):
        folder = root / f"class{i % CLASSES}"
        folder.mkdir(parents=True, exist_ok=True)
        small = rng.integers(0, 256, (max(2, size // 8), max(2, size // 8), 3), dtype=np.uint8)
        image = Image.fromarray(small).resize((size * 5 // 4, size), Image.BILINEAR)
        image.save(folder / f"{i:04d}.jpg", quality=90)
    return root
