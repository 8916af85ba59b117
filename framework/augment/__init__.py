"""Augmentations: per-image albumentations transforms and batch-level mixing, composed
from augmentation plugins (``basic+cutout+mixup``) into one :class:`Pipeline`."""
import os

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")  # albumentations must not phone home

from .pipeline import (  # noqa: E402
    INTERPOLATIONS, AugmentRequest, Augmentation, ImageTransform, Pipeline, build_pipeline, sample_seed,
    short_side_shape,
)

__all__ = ["INTERPOLATIONS", "AugmentRequest", "Augmentation", "ImageTransform", "Pipeline",
           "build_pipeline", "sample_seed", "short_side_shape"]
