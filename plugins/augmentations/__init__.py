"""Built-in augmentations. Registration only: the factories live in ``recipes`` and
import albumentations/torch when first called."""
from __future__ import annotations

from typing import Any, Callable

from tlf.hookspecs import hookimpl
from tlf.specs import AugmentationSpec


def _lazy(name: str) -> Callable[..., Any]:
    """A factory that imports ``recipes`` only when the augmentation is built."""
    def factory(argument: str | None, request: Any) -> Any:
        from . import recipes
        return getattr(recipes, name)(argument, request)
    factory.__name__ = name
    return factory


@hookimpl
def tlf_register_augmentations(register: Callable[[AugmentationSpec], None]) -> None:
    register(AugmentationSpec(
        name="none", factory=_lazy("none"),
        description="No augmentation: resize the short side and center crop, as for evaluation"))
    register(AugmentationSpec(
        name="basic", factory=_lazy("basic"),
        description="Random resized crop (scale 0.08-1) and horizontal flip"))
    register(AugmentationSpec(
        name="flip", factory=_lazy("flip"),
        description="Horizontal flip only (after the deterministic resize and center crop)"))
    register(AugmentationSpec(
        name="strong", factory=_lazy("strong"),
        description="basic + colour jitter + affine (rotate/shift/scale/shear) + coarse dropout"))
    register(AugmentationSpec(
        name="cutout", factory=_lazy("cutout"),
        description="Cutout: one or two random rectangles blanked (coarse dropout)"))
    register(AugmentationSpec(
        name="randaugment", factory=_lazy("randaugment"), aliases=("rand",), argument="N,M",
        description="RandAugment style: N random ops (default 2) of magnitude up to M/10 (default 9)"))
    register(AugmentationSpec(
        name="trivialaugment", factory=_lazy("trivialaugment"), aliases=("trivial",),
        description="TrivialAugment style: one random op with a uniformly random magnitude"))
    register(AugmentationSpec(
        name="mixup", factory=_lazy("mixup"), argument="ALPHA", batch_level=True,
        description="Batch-level mixup with soft targets, Beta(ALPHA, ALPHA) weights (default 0.2)"))
    register(AugmentationSpec(
        name="cutmix", factory=_lazy("cutmix"), argument="ALPHA", batch_level=True,
        description="Batch-level cutmix with area-weighted soft targets, Beta(ALPHA, ALPHA) (default 1.0)"))
