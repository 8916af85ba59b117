"""Shared helpers for the model tests: cached random-init models (copied per test)."""
from __future__ import annotations

import copy
from functools import lru_cache

from tlf.models import Classifier, build_model


@lru_cache(maxsize=None)
def _cached(backbone: str, num_classes: int, head: str) -> Classifier:
    return build_model(backbone, num_classes, pretrained=False, head=head, image_size=32)


def model(backbone: str, num_classes: int = 3, head: str = "linear") -> Classifier:
    """A fresh copy of a random-init model (building once per session keeps the tests fast)."""
    return copy.deepcopy(_cached(backbone, num_classes, head))

