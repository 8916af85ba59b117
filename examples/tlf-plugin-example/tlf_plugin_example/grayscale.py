"""The ``grayscale`` augmentation: albumentations' ToGray, keeping three channels."""
from __future__ import annotations

import os

from tlf.augment import AugmentRequest, Augmentation
from tlf.errors import TlfError

DEFAULT_P = 0.2


def make_grayscale(argument: str | None, request: AugmentRequest) -> Augmentation:
    """``grayscale[:P]``: each training image becomes gray with probability P (default 0.2)."""
    try:
        p = float(argument) if argument else DEFAULT_P
    except ValueError:
        p = -1.0
    if not 0.0 <= p <= 1.0:
        raise TlfError(f"grayscale probability must be between 0 and 1, got {argument!r}", hint="e.g. grayscale:0.3")
    os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
    import albumentations as A

    return Augmentation(image=[A.ToGray(num_output_channels=3, p=p)], batch=None, crops=False)
