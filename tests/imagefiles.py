"""Tiny generated images for data tests."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from tlf.data import ArrayImageSet, FileImageSet


def random_images(n: int, height: int, width: int, seed: int = 0) -> np.ndarray:
    """Smooth random colour images (JPEG-friendly) as NxHxWx3 uint8."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (n, max(2, height // 8), max(2, width // 8), 3), dtype=np.uint8)
    return np.stack([np.asarray(Image.fromarray(s).resize((width, height), Image.BILINEAR)) for s in small])


def array_set(n: int = 16, height: int = 40, width: int = 56, classes: int = 4, seed: int = 0) -> ArrayImageSet:
    return ArrayImageSet(random_images(n, height, width, seed), np.arange(n) % classes)


def file_set(directory: Path, n: int = 12, classes: int = 3, fmt: str = "png", seed: int = 0,
             sizes: tuple[tuple[int, int], ...] = ((48, 64), (64, 40), (50, 50))) -> FileImageSet:
    """``n`` images of varying aspect ratios written as ``fmt`` files."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        h, w = sizes[i % len(sizes)]
        path = directory / f"img{i:03d}.{fmt}"
        Image.fromarray(random_images(1, h, w, seed + i)[0]).save(path)
        paths.append(path)
    return FileImageSet(paths, [i % classes for i in range(n)])
