"""Generated multi-label images: a 2x2 grid of tiles, each a textured background, 1 to 3 of them
holding a different coloured shape; an image's label set is the shapes it shows. Offline, tiny
and seeded (the same options and seed give the same images): the multi-label path end to end
without data to download."""
from __future__ import annotations

import numpy as np

from tlf.arguments import integer_options
from tlf.data.dataset import ArrayImageSet, DatasetRequest, Splits
from tlf.errors import TlfError

from .synthetic import SHAPES, _background, _image

DEFAULTS = {"train": 120, "val": 40, "size": 64, "classes": 4}
MOST_SHAPES = 3  # shapes per image, at most (one tile of the four stays background)

# "train=120,val=40,size=64,classes=4" (any subset; a bare number sets train) -> dict
parse_options = integer_options(tuple(DEFAULTS), bare="train")


def checked_options(given: dict[str, int] | None) -> dict[str, int]:
    """The defaults with ``given`` on top, in range."""
    options = {**DEFAULTS, **(given or {})}
    if not 2 <= options["classes"] <= len(SHAPES):
        raise TlfError(f"synthetic-multilabel classes must be 2..{len(SHAPES)}, got {options['classes']}",
                       hint="e.g. classes=4")
    if options["train"] < 1 or options["val"] < 1:
        raise TlfError("synthetic-multilabel needs at least one train and one val image", hint="e.g. train=120,val=40")
    if not 32 <= options["size"] <= 512 or options["size"] % 2:
        raise TlfError(f"synthetic-multilabel size must be an even 32..512 px, got {options['size']}", hint="e.g. size=64")
    return options


def _grid(shapes: list[int], size: int, rng: np.random.Generator) -> np.ndarray:
    """A size x size image of four tiles, ``shapes`` (class indices) drawn in random distinct tiles."""
    half = size // 2
    tiles = [np.clip(np.rint(_background(half, rng)), 0, 255).astype(np.uint8) for _ in range(4)]
    for tile, shape in zip(rng.permutation(4), shapes):
        tiles[tile] = _image(SHAPES[shape], half, rng)
    return np.vstack([np.hstack(tiles[:2]), np.hstack(tiles[2:])])


def generate(count: int, classes: int, size: int, seed: int, split: int) -> tuple[np.ndarray, np.ndarray]:
    """``count`` images and their N x ``classes`` multi-hot labels; deterministic in all arguments."""
    rng = np.random.default_rng([seed, split, classes, size, 2])
    labels = np.zeros((count, classes), dtype=np.int64)
    images = []
    for i in range(count):
        shapes = rng.choice(classes, size=int(rng.integers(1, min(MOST_SHAPES, classes) + 1)), replace=False)
        labels[i, shapes] = 1
        images.append(_grid(list(shapes), size, rng))
    return np.stack(images), labels


def synthetic_multilabel(argument: dict[str, int] | None, request: DatasetRequest) -> Splits:
    """The generated multi-label dataset (``argument``: :data:`parse_options`' dict), seeded by ``request.seed``."""
    o = checked_options(argument)
    x_train, y_train = generate(o["train"], o["classes"], o["size"], request.seed, 0)
    x_val, y_val = generate(o["val"], o["classes"], o["size"], request.seed, 1)
    name = ("synthetic-multilabel" if argument is None else
            "synthetic-multilabel:" + ",".join(f"{k}={v}" for k, v in argument.items()))
    return Splits(name=name, classes=list(SHAPES[:o["classes"]]),
                  train=ArrayImageSet(x_train, y_train, name=f"{name}/train"),
                  val=ArrayImageSet(x_val, y_val, name=f"{name}/val"),
                  split=f"generated separately, seed {request.seed}")
