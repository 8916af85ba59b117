"""Built-in augmentations. Registration only: the factories live in ``recipes``, named as
``"module:attr"`` and imported (with albumentations and torch) when first built."""
from __future__ import annotations

from typing import Callable

from tlf.arguments import integers, number
from tlf.hookspecs import hookimpl
from tlf.specs import AugmentationSpec

RECIPES = "tlf.plugins.augmentations.recipes"  # the factories, imported when an augmentation is built


@hookimpl
def tlf_register_augmentations(register: Callable[[AugmentationSpec], None]) -> None:
    register(AugmentationSpec(
        name="none", factory=f"{RECIPES}:none",
        description="No augmentation: resize the short side and center crop, as for evaluation"))
    register(AugmentationSpec(
        name="basic", factory=f"{RECIPES}:basic",
        description="Random resized crop (scale 0.08-1) and horizontal flip"))
    register(AugmentationSpec(
        name="flip", factory=f"{RECIPES}:flip",
        description="Horizontal flip only (after the deterministic resize and center crop)"))
    register(AugmentationSpec(
        name="strong", factory=f"{RECIPES}:strong",
        description="basic + colour jitter + affine (rotate/shift/scale/shear) + coarse dropout"))
    register(AugmentationSpec(
        name="cutout", factory=f"{RECIPES}:cutout",
        description="Cutout: one or two random rectangles blanked (coarse dropout)"))
    register(AugmentationSpec(
        name="randaugment", factory=f"{RECIPES}:randaugment", aliases=("rand",), argument="N,M", parse=integers(2),
        description="RandAugment style: N random ops (default 2) of magnitude up to M/10 (default 9)"))
    register(AugmentationSpec(
        name="trivialaugment", factory=f"{RECIPES}:trivialaugment", aliases=("trivial",),
        description="TrivialAugment style: one random op with a uniformly random magnitude"))
    register(AugmentationSpec(
        name="mixup", factory=f"{RECIPES}:mixup", argument="ALPHA", parse=number, batch_level=True,
        description="Batch-level mixup with soft targets, Beta(ALPHA, ALPHA) weights (default 0.2)"))
    register(AugmentationSpec(
        name="cutmix", factory=f"{RECIPES}:cutmix", argument="ALPHA", parse=number, batch_level=True,
        description="Batch-level cutmix with area-weighted soft targets, Beta(ALPHA, ALPHA) (default 1.0)"))
