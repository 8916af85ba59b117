"""Composing augmentation plugins into train/eval transforms.

Images stay uint8 HWC through every per-image transform; conversion to float and
normalization happen later, on the device (:mod:`tlf.data.model_input`).

Randomness: the train transform is reseeded for every sample from
``(seed, epoch, index)`` (:func:`sample_seed`), so a run is reproducible whatever the
number of DataLoader workers, and every epoch sees new augmentations (albumentations
2.0.8 on its own repeats the same draws in each epoch when workers are restarted or
forked from the same state).
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import albumentations as A
import albumentations.augmentations.geometric.functional as fgeometric
import cv2
import numpy as np

from ..augment_chain import parse_parts
from ..errors import TlfError
from ..preprocessing import (DEFAULT_CROP_PCT, DEFAULT_IMAGE_SIZE, DEFAULT_INTERPOLATION, IMAGENET_MEAN, IMAGENET_STD,
                             INTERPOLATIONS, resize_for)
from ..preprocessing import short_side_shape as scaled_shape
from ..registry import check_product, get_registry

CV2_FLAGS = {  # OpenCV's flag for each of tlf.preprocessing.INTERPOLATIONS
    "nearest": cv2.INTER_NEAREST,
    "bilinear": cv2.INTER_LINEAR,
    "bicubic": cv2.INTER_CUBIC,
    "area": cv2.INTER_AREA,
    "lanczos": cv2.INTER_LANCZOS4,
}


@dataclass(frozen=True)
class AugmentRequest:
    """What augmentation factories need to know about the model and the data."""

    image_size: int  # the square size the model sees
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    interpolation: str = DEFAULT_INTERPOLATION
    crop_pct: float = DEFAULT_CROP_PCT  # eval: resize the short side to image_size / crop_pct, then center crop
    resize: int | None = None  # the eval short side when fixed already (tlf.preprocessing.Preprocessing.resize)
    num_classes: int = 0
    seed: int = 0

    def __post_init__(self) -> None:
        if self.image_size < 1:
            raise TlfError(f"image size must be positive, got {self.image_size}",
                           hint=f"use e.g. --image-size {DEFAULT_IMAGE_SIZE}")
        if not 0 < self.crop_pct <= 1:
            raise TlfError(f"crop_pct must be in (0, 1], got {self.crop_pct}", hint=f"use e.g. {DEFAULT_CROP_PCT}")
        if self.interpolation not in INTERPOLATIONS:
            raise TlfError(f"unknown interpolation {self.interpolation!r}",
                           hint=f"choose one of: {', '.join(INTERPOLATIONS)}")

    @property
    def cv2_interpolation(self) -> int:
        """The OpenCV flag for :attr:`interpolation`."""
        return CV2_FLAGS[self.interpolation]

    @property
    def resize_short(self) -> int:
        """Short side the eval transform resizes to before its center crop."""
        return self.resize if self.resize is not None else resize_for(self.image_size, self.crop_pct)


@dataclass
class Augmentation:
    """What an augmentation plugin returns.

    ``image``: albumentations transforms, uint8 HWC in and out; when ``crops`` is True
    they end with an ``image_size`` x ``image_size`` image (e.g. a random resized crop), otherwise
    the pipeline resizes and center-crops before them. ``batch``: a callable applied
    to whole batches on the device, ``(x float NCHW, y int64 N or float NxC) -> (x, y
    float NxC)``.
    """

    image: list[Any] = field(default_factory=list)
    batch: Callable[..., Any] | None = None
    crops: bool = False


def short_side_shape(height: int, width: int, short: int) -> tuple[int, int]:
    """(height, width) after downscaling the short side to ``short``
    (:func:`tlf.preprocessing.short_side_shape`); images already that small keep their shape."""
    return (height, width) if min(height, width) <= short else scaled_shape(height, width, short)


def sample_seed(seed: int, epoch: int, index: int) -> int:
    """A 32-bit seed for one sample of one epoch, well mixed from the three numbers."""
    return int(np.random.SeedSequence([seed & 0xFFFFFFFF, epoch, index]).generate_state(1)[0])


class ImageTransform:
    """An albumentations ``Compose`` that can be reseeded per call; picklable for workers."""

    def __init__(self, transforms: Sequence[Any], image_size: int, seed: int) -> None:
        self.compose = A.Compose(list(transforms), seed=seed)
        self.image_size = image_size

    def __call__(self, image: np.ndarray, seed: int | None = None) -> np.ndarray:
        """``image`` uint8 HxWx3 -> uint8 image_size x image_size x 3; ``seed`` makes the draw reproducible."""
        if seed is not None:
            self.compose.set_random_state(np.random.default_rng(seed), random.Random(seed))
        out = self.compose(image=image)["image"]
        if out.shape != (self.image_size, self.image_size, 3) or out.dtype != np.uint8:
            raise RuntimeError(f"augmentation produced {out.shape} {out.dtype}, expected "
                               f"({self.image_size}, {self.image_size}, 3) uint8: a cropping plugin must end at the image size")
        # a transform that changes nothing (a crop of the whole image at its size) returns its
        # input: the decode cache's read-only map, which torch.from_numpy warns about
        return out if out.flags.writeable else out.copy()


class BatchChoice:
    """Applies one of several batch augmentations, drawn per batch (``mixup+cutmix``)."""

    def __init__(self, choices: Sequence[Callable[..., Any]], seed: int) -> None:
        self.choices = list(choices)
        self.rng = np.random.default_rng(seed)

    def __call__(self, x: Any, y: Any) -> tuple[Any, Any]:
        return self.choices[int(self.rng.integers(len(self.choices)))](x, y)


class Pipeline:
    """Train and eval transforms built from augmentation plugins.

    ``train(img, seed)`` and ``eval(img)`` map uint8 HxWx3 to uint8 SxSx3 (transpose to
    CHW happens in the loader); ``batch`` is the batch-level augmentation or None.
    """

    def __init__(self, text: str, request: AugmentRequest, parts: Sequence[tuple[str, Augmentation]]) -> None:
        self.text = text
        self.request = request
        self.parts = list(parts)
        croppers = [name for name, aug in parts if aug.crops]
        if len(croppers) > 1:
            raise TlfError(f"augmentations {' and '.join(map(repr, croppers))} both crop the image",
                           hint="keep one of them (e.g. 'basic+cutout', not 'basic+strong')")
        self.eval_transform = ImageTransform(self._resize_crop(), request.image_size, request.seed)
        image_ops = [op for _, aug in sorted(parts, key=lambda p: not p[1].crops) for op in aug.image]
        if not croppers:
            image_ops = self._resize_crop() + image_ops
        self.train_transform = ImageTransform(image_ops, request.image_size, request.seed)
        batch = [aug.batch for _, aug in parts if aug.batch is not None]
        self.batch: Callable[..., Any] | None = (
            None if not batch else batch[0] if len(batch) == 1 else BatchChoice(batch, request.seed))
        self.deterministic_train = not any(aug.image for _, aug in parts) and not batch

    def _resize_crop(self) -> list[Any]:
        r = self.request
        return [A.SmallestMaxSize(max_size=r.resize_short, interpolation=r.cv2_interpolation,
                                  area_for_downscale="image", p=1.0),
                A.CenterCrop(r.image_size, r.image_size, p=1.0)]

    @property
    def resize_short(self) -> int:
        """The largest short side any transform needs: the decode cache stores images at this size."""
        return self.request.resize_short

    def resize(self, image: np.ndarray) -> np.ndarray:
        """Downscale ``image`` so its short side is :attr:`resize_short` (never upscales),
        giving the pixels the eval transform's resize gives. Stateless: safe from threads."""
        shape = short_side_shape(*image.shape[:2], self.resize_short)
        return image if shape == image.shape[:2] else fgeometric.resize(image, shape, cv2.INTER_AREA)

    def train(self, image: np.ndarray, seed: int | None = None) -> np.ndarray:
        """A random training view of ``image`` (reproducible when ``seed`` is given)."""
        return self.train_transform(image, seed)

    def eval(self, image: np.ndarray) -> np.ndarray:
        """The deterministic evaluation view of ``image``."""
        return self.eval_transform(image)

    def __repr__(self) -> str:
        return f"Pipeline({self.text!r}, image_size={self.request.image_size}, resize_short={self.resize_short})"


def build_pipeline(text: str, request: AugmentRequest) -> Pipeline:
    """Resolve each ``+``-separated augmentation plugin and compose them."""
    registry = get_registry()
    parts: list[tuple[str, Augmentation]] = []
    seen: set[str] = set()
    for part in parse_parts(text):
        spec, argument = registry.resolve("augmentations", part)
        if spec.name in seen:
            raise TlfError(f"augmentation {spec.name!r} is listed twice in {text!r}", hint="list it once")
        seen.add(spec.name)
        augmentation = check_product("augmentations", spec, spec.build(argument, request))
        parts.append((spec.name, augmentation))
    return Pipeline(text, request, parts)
