"""Datasets, image reading, loaders and caches."""
from .splits import ArrayImageSet, DatasetRequest, FileImageSet, ImageSet, Problem, Splits

__all__ = ["ArrayImageSet", "DatasetRequest", "FileImageSet", "ImageSet", "Problem", "Splits"]
