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


def marked_square_folder(root: Path, size: int, side: int | None = None, right: bool = False) -> Path:
    """train/val class folders of ``size`` px noise: class 'marked' has a red square (``side`` px,
    default a quarter of the image) somewhere in the top-left quarter, or with ``right`` the
    top-right one; 'plain' has none. 24 training and 6 validation images per class."""
    rng = np.random.default_rng(1)
    side = size // 4 if side is None else side
    for split, n in (("train", 24), ("val", 6)):
        for name in ("marked", "plain"):
            (root / split / name).mkdir(parents=True)
            for i in range(n):
                pixels = rng.integers(60, 200, size=(size, size, 3)).astype(np.uint8)
                if name == "marked":
                    x, y = rng.integers(2, size // 2 - side - 2, size=2)
                    x += size // 2 if right else 0
                    pixels[y:y + side, x:x + side] = (230, 30, 30)
                Image.fromarray(pixels).save(root / split / name / f"{i}.png")
    return root
