"""How an ``--augment`` text splits into augmentation plugin names (``basic+cutout+mixup``).

Apart from :mod:`tlf.augment` so that planning a run checks the names without importing
albumentations and OpenCV.
"""
from __future__ import annotations

from .errors import TlfError


def parse_parts(text: str) -> list[str]:
    """``"basic + cutout+mixup:0.4"`` -> ``["basic", "cutout", "mixup:0.4"]``."""
    parts = [p.strip() for p in (text or "").split("+")]
    if not text or not text.strip() or any(not p for p in parts):
        raise TlfError(f"empty augmentation in {text!r}",
                       hint="write names joined by '+', e.g. 'basic+cutout+mixup' (or 'none')")
    return parts
