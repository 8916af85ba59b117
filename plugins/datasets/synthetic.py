"""Generated coloured shapes on textured backgrounds: an offline dataset with real visual structure.

Only the shape tells the class: colours, backgrounds (gradients, stripes, checks, noise),
position, size and rotation are random. The same options and seed give the same images.
"""
from __future__ import annotations

import math

import numpy as np

from tlf.arguments import integer_options
from tlf.data.dataset import ArrayImageSet, DatasetRequest, Splits
from tlf.errors import TlfError

SHAPES = ("circle", "square", "triangle", "star", "cross", "ring")
DEFAULTS = {"train": 80, "val": 20, "size": 64, "classes": len(SHAPES)}
SUPERSAMPLE = 4  # shapes are drawn at 4x and downscaled, for anti-aliased edges


# the spec's parse: "train=80,val=20,size=64,classes=6" (any subset; a bare number sets train) -> dict
parse_options = integer_options(tuple(DEFAULTS), bare="train")


def checked_options(given: dict[str, int] | None) -> dict[str, int]:
    """The defaults with ``given`` on top, in range."""
    options = {**DEFAULTS, **(given or {})}
    if not 2 <= options["classes"] <= len(SHAPES):
        raise TlfError(f"synthetic classes must be 2..{len(SHAPES)}, got {options['classes']}", hint="e.g. classes=4")
    if options["train"] < 1 or options["val"] < 1:
        raise TlfError("synthetic train and val need at least one image per class", hint="e.g. train=80,val=20")
    if not 16 <= options["size"] <= 512:
        raise TlfError(f"synthetic size must be 16..512 px, got {options['size']}", hint="e.g. size=64")
    return options


def _polygon(shape: str, cx: float, cy: float, r: float, angle: float) -> list[tuple[float, float]]:
    if shape == "square":
        points = [(1, 1), (-1, 1), (-1, -1), (1, -1)]
        scale = r / math.sqrt(2)
    elif shape == "triangle":
        points = [(math.cos(a), math.sin(a)) for a in (math.pi / 2 + k * 2 * math.pi / 3 for k in range(3))]
        scale = r
    elif shape == "star":
        points = [((1.0 if k % 2 == 0 else 0.42) * math.cos(math.pi / 2 + k * math.pi / 5),
                   (1.0 if k % 2 == 0 else 0.42) * math.sin(math.pi / 2 + k * math.pi / 5)) for k in range(10)]
        scale = r
    elif shape == "cross":
        w = 0.34
        points = [(w, 1), (-w, 1), (-w, w), (-1, w), (-1, -w), (-w, -w), (-w, -1), (w, -1), (w, -w), (1, -w),
                  (1, w), (w, w)]
        scale = r
    else:
        raise ValueError(shape)
    c, s = math.cos(angle), math.sin(angle)
    return [(cx + scale * (x * c - y * s), cy + scale * (x * s + y * c)) for x, y in points]


def _mask(shape: str, size: int, rng: np.random.Generator) -> np.ndarray:
    from PIL import Image, ImageDraw

    big = size * SUPERSAMPLE
    r = rng.uniform(0.2, 0.38) * big
    cx, cy = rng.uniform(r, big - r, size=2)
    angle = rng.uniform(0, 2 * math.pi)
    img = Image.new("L", (big, big), 0)
    draw = ImageDraw.Draw(img)
    if shape in ("circle", "ring"):
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=255)
        if shape == "ring":
            inner = r * rng.uniform(0.5, 0.62)
            draw.ellipse([cx - inner, cy - inner, cx + inner, cy + inner], fill=0)
    else:
        draw.polygon(_polygon(shape, cx, cy, r, angle), fill=255)
    return np.asarray(img.resize((size, size), Image.Resampling.BOX), dtype=np.float32) / 255.0


def _background(size: int, rng: np.random.Generator) -> np.ndarray:
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    base = rng.uniform(0, 255, size=3).astype(np.float32)
    other = rng.uniform(0, 255, size=3).astype(np.float32)
    angle = rng.uniform(0, 2 * math.pi)
    ramp = np.cos(angle) * xx + np.sin(angle) * yy
    kind = rng.integers(0, 3)
    if kind == 0:  # smooth gradient
        t = (ramp - ramp.min()) / max(float(np.ptp(ramp)), 1e-6)
    elif kind == 1:  # stripes
        t = 0.5 + 0.5 * np.sin(2 * math.pi * rng.uniform(2, 8) * ramp)
    else:  # checks
        f = rng.uniform(2, 8)
        t = ((np.floor(xx * f) + np.floor(yy * f)) % 2).astype(np.float32)
    t = t * rng.uniform(0.2, 0.6)
    img = base * (1 - t[..., None]) + other * t[..., None]
    return img + rng.normal(0, rng.uniform(4, 20), size=(size, size, 3)).astype(np.float32)


def _image(shape: str, size: int, rng: np.random.Generator) -> np.ndarray:
    background = _background(size, rng)
    mean = background.reshape(-1, 3).mean(axis=0)
    for _ in range(20):  # a shape colour that stands out from the background
        color = rng.uniform(0, 255, size=3).astype(np.float32)
        if np.abs(color - mean).sum() > 180:
            break
    foreground = color + rng.normal(0, 6, size=(size, size, 3)).astype(np.float32)
    alpha = _mask(shape, size, rng)[..., None]
    return np.clip(np.rint(background * (1 - alpha) + foreground * alpha), 0, 255).astype(np.uint8)


def generate(per_class: int, classes: int, size: int, seed: int, split: int) -> tuple[np.ndarray, np.ndarray]:
    """``per_class`` images of each of the first ``classes`` shapes, shuffled; deterministic in all arguments."""
    rng = np.random.default_rng([seed, split, classes, size])
    labels = rng.permutation(np.repeat(np.arange(classes), per_class))
    images = np.stack([_image(SHAPES[label], size, rng) for label in labels])
    return images, labels.astype(np.int64)


def synthetic(argument: dict[str, int] | None, request: DatasetRequest) -> Splits:
    """The synthetic shapes dataset (``argument``: :data:`parse_options`' dict), seeded by ``request.seed``."""
    o = checked_options(argument)
    x_train, y_train = generate(o["train"], o["classes"], o["size"], request.seed, 0)
    x_val, y_val = generate(o["val"], o["classes"], o["size"], request.seed, 1)
    name = "synthetic" if argument is None else "synthetic:" + ",".join(f"{k}={v}" for k, v in argument.items())
    return Splits(name=name, classes=list(SHAPES[:o["classes"]]),
                  train=ArrayImageSet(x_train, y_train, name=f"{name}/train"),
                  val=ArrayImageSet(x_val, y_val, name=f"{name}/val"),
                  split=f"generated separately, seed {request.seed}")
