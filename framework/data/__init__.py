"""Datasets, image reading, loaders and caches."""
from __future__ import annotations

from ..registry import get_registry
from .dataset import ArrayImageSet, DatasetRequest, FileImageSet, ImageSet, Problem, Splits

__all__ = ["ArrayImageSet", "DatasetRequest", "FileImageSet", "ImageSet", "Problem", "Splits", "load_dataset"]


def load_dataset(text: str, request: DatasetRequest | None = None) -> Splits:
    """The dataset plugin named by ``text`` (``"flowers"``, ``"folder:PATH"``), called with ``request``
    (default: the cache under ``$TLF_HOME/datasets``, downloads allowed)."""
    return get_registry().create("datasets", text, request or DatasetRequest())
