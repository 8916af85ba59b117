"""The preprocessing contract: how an image becomes model input, in one torch-free object.

Built once per run from the backbone's metadata and the plan's image size
(:meth:`Preprocessing.from_meta`), stored in the run directory (``preprocessing.json``)
and in the ONNX metadata, and read by the loaders (eval transform), the device-side
normalization, the export and :mod:`tlf.runtime` alike. The eval view is: resize the
short side to ``resize`` (``downscale`` when shrinking, ``interpolation`` when
enlarging), centre-crop ``image_size``; the model input is ``(x / 255 - mean) / std``, computed
everywhere as ``(x - offset) * scale`` with :meth:`Preprocessing.affine`'s constants.
Only numpy is imported here.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Sequence

import numpy as np

from .errors import TlfError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# tlf's fallback where nothing states a model's input (an AugmentRequest or Preprocessing made
# without a backbone's meta, a hint): ImageNet's usual eval view, the 224 px centre crop of the short
# side resized to 256. Backbones state theirs in their BackboneFacts, from their library's recipe (and
# that library's own fallback: timm's resolve_data_config, torchvision's weights' transforms()).
DEFAULT_IMAGE_SIZE = 224
DEFAULT_CROP_PCT = 0.875
DEFAULT_INTERPOLATION = "bilinear"
# resampling methods by name: the training pipelines know all of them (OpenCV flags in
# tlf.augment.pipeline); tlf.runtime reimplements RUNTIME_INTERPOLATIONS, so only those export
INTERPOLATIONS = ("nearest", "bilinear", "bicubic", "area", "lanczos")
RUNTIME_INTERPOLATIONS = ("nearest", "bilinear", "bicubic", "area")
MAX_IMAGE_SIZE = 2048  # the largest crop tlf trains or predicts at: a 2048 px image is 12 MiB of uint8 already
MAX_RESIZE = 4 * MAX_IMAGE_SIZE  # the largest short side before the crop (a file's metadata cannot ask for more)
DOWNSCALE = "area"  # the eval transform shrinks with INTER_AREA (albumentations area_for_downscale)


def resize_for(size: int, crop_pct: float) -> int:
    """The short side the eval transform resizes to before its ``size`` centre crop."""
    return max(size, math.floor(size / crop_pct))


def short_side_shape(height: int, width: int, short: int) -> tuple[int, int]:
    """(height, width) with the short side scaled to ``short``, rounded as albumentations'
    ``SmallestMaxSize`` rounds."""
    scale = short / min(height, width)
    return max(1, round(height * scale)), max(1, round(width * scale))


def affine(mean: Sequence[float], std: Sequence[float]) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """(offset, scale) with ``(x - offset) * scale == (x / 255 - mean) / std`` on 0..255 pixels:
    the one place the normalization arithmetic is written (numpy, torch and the ONNX graph apply it)."""
    return tuple(255.0 * float(m) for m in mean), tuple(1.0 / (255.0 * float(s)) for s in std)


@dataclass(frozen=True)
class BackboneFacts:
    """How a backbone wants its input, known from its spec before it is built (as timm's
    ``pretrained_cfg`` is): a :class:`~tlf.specs.BackboneSpec`'s ``facts`` states them, and the
    built model's :class:`~tlf.models.BackboneMeta` (which extends this class) takes them from
    the same source."""

    image_size: int  # the square crop of the pretrained recipe
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    interpolation: str  # "bilinear" | "bicubic" | "nearest"
    crop_pct: float  # eval: resize the short side to image_size / crop_pct, then center-crop

    def __post_init__(self) -> None:
        for name, value in (("mean", tuple(map(float, self.mean))), ("std", tuple(map(float, self.std))),
                            ("image_size", int(self.image_size)), ("crop_pct", float(self.crop_pct))):
            object.__setattr__(self, name, value)  # a list or a numpy number compares as the plain value

    def preprocessing_facts(self) -> BackboneFacts:
        """These facts alone (a :class:`~tlf.models.BackboneMeta` without its model's name,
        feature dimension and weights), to compare with a spec's."""
        return BackboneFacts(self.image_size, self.mean, self.std, self.interpolation, self.crop_pct)


@dataclass(frozen=True)
class Preprocessing:
    """Size, resize, crop and normalization of a model's input."""

    image_size: int  # the square centre crop the model sees
    resize: int  # the short side before the crop
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    interpolation: str = DEFAULT_INTERPOLATION  # enlarging
    downscale: str = DOWNSCALE  # shrinking

    def __post_init__(self) -> None:
        object.__setattr__(self, "mean", tuple(float(v) for v in self.mean))
        object.__setattr__(self, "std", tuple(float(v) for v in self.std))
        if len(self.mean) != 3 or len(self.std) != 3 or min(self.std) <= 0:
            raise TlfError(f"preprocessing needs 3 means and 3 positive stds, got {self.mean} and {self.std}",
                           hint="re-export the model with 'tlf export'")
        if self.image_size > MAX_IMAGE_SIZE or self.resize > MAX_RESIZE:
            raise TlfError(f"preprocessing asks for a {self.image_size} px crop of a {self.resize} px short side; "
                           f"tlf handles at most {MAX_IMAGE_SIZE} and {MAX_RESIZE}",
                           hint="the file is damaged or not a tlf export; re-export the model with 'tlf export'")
        if self.image_size < 1 or self.resize < self.image_size:
            raise TlfError(f"preprocessing resize {self.resize} is smaller than the crop {self.image_size}",
                           hint="the eval transform resizes the short side to at least the crop size")
        for name in ("interpolation", "downscale"):
            if getattr(self, name) not in INTERPOLATIONS:
                raise TlfError(f"unknown {name} {getattr(self, name)!r}", hint=f"choose one of: {', '.join(INTERPOLATIONS)}")

    @classmethod
    def from_meta(cls, meta: BackboneFacts, image_size: int | None = None) -> Preprocessing:
        """From a backbone's facts (its spec's :class:`BackboneFacts`, or its built
        :class:`~tlf.models.BackboneMeta`) at ``image_size`` (default: the backbone's)."""
        image_size = image_size or meta.image_size
        return cls(image_size, resize_for(image_size, meta.crop_pct), tuple(meta.mean), tuple(meta.std),
                   meta.interpolation)

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "preprocessing") -> Preprocessing:
        try:
            # "size": preprocessing.json of runs made before the field was named image_size
            image_size = data["image_size"] if "image_size" in data else data["size"]
            return cls(int(image_size), int(data["resize"]), tuple(data["mean"]), tuple(data["std"]),
                       str(data["interpolation"]), str(data.get("downscale") or data["interpolation"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise TlfError(f"{source}: incomplete preprocessing ({type(exc).__name__}: {exc})",
                           hint="re-export the model with 'tlf export'") from None

    def to_metadata(self) -> dict[str, Any]:
        """The ONNX ``tlf.*`` entries (see :data:`tlf.runtime.METADATA_KEYS`)."""
        return {"resize": self.resize, "crop": self.image_size, "input_size": [3, self.image_size, self.image_size],
                "mean": list(self.mean), "std": list(self.std), "interpolation": self.interpolation,
                "downscale": self.downscale}

    @classmethod
    def from_metadata(cls, meta: dict[str, Any], source: str = "model") -> Preprocessing:
        return cls.from_dict({**meta, "image_size": meta.get("crop")}, source)

    def check_runtime(self, source: str = "model") -> None:
        """tlf.runtime can resize this way (an export must pass this)."""
        for name in ("interpolation", "downscale"):
            if getattr(self, name) not in RUNTIME_INTERPOLATIONS:
                raise TlfError(f"{source}: tlf.runtime cannot resize with {getattr(self, name)!r} ({name})",
                               hint=f"supported: {', '.join(RUNTIME_INTERPOLATIONS)}")

    def affine(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """(offset, scale) of this normalization (see :func:`affine`)."""
        return affine(self.mean, self.std)

    def normalize(self, images: np.ndarray) -> np.ndarray:
        """uint8 (N x) 3 x H x W -> float32 model input, with numpy."""
        return normalize(images, self.mean, self.std)


def normalize(images: np.ndarray, mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    """uint8 (N x) 3 x H x W -> float32 ``(x / 255 - mean) / std`` (what tlf's loaders feed models), with numpy."""
    offset, scale = (np.asarray(v, dtype=np.float32).reshape(3, 1, 1) for v in affine(mean, std))
    return ((images.astype(np.float32) - offset) * scale).astype(np.float32)
