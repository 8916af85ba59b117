"""Pooled frozen features kept on disk, so a ``transfer`` run and ``tlf audit`` of the same
images pay the frozen pass once between them (and a second run or audit none).

Only the case where the features are the same whatever the epoch is stored: the whole
backbone frozen, its pooled output (one vector per image), one deterministic view (the
eval resize and crop). Rows are keyed by each image's decoded pixels (:func:`pixel_hashes`),
so a run with ``--exclude``/``--relabel`` (fewer images, other labels) finds the rows of an
earlier run or audit; the file is keyed by everything the features depend on besides the
pixels (:func:`model_key`). Files live in ``$TLF_HOME/features`` and the least recently
used go beyond :data:`CACHE_BYTES` (:func:`tlf.features.onnx_prefix.prune`).

Hand-written because no library caches network outputs by input content: torch and
onnxruntime have no such cache, and joblib's ``Memory`` keys whole calls, not rows.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch import nn

from ..paths import cache_dir
from ..safe_files import atomic_write

FORMAT = 1  # bump when the stored layout changes
CACHE_BYTES = 4 << 30  # ~200k images of 1280 fp32 features
HASH_BYTES = 16


def pixel_hashes(images) -> np.ndarray:
    """One 16-byte BLAKE2b digest per image of ``images`` (an :class:`tlf.data.ImageSet`) over
    its shape and decoded pixels: equal digests are equal images (exact duplicates)."""
    out = np.empty((len(images), HASH_BYTES), dtype=np.uint8)
    for i in range(len(images)):
        image = np.ascontiguousarray(images.load(i))
        digest = hashlib.blake2b(str(image.shape).encode(), digest_size=HASH_BYTES)
        digest.update(image.data)
        out[i] = np.frombuffer(digest.digest(), dtype=np.uint8)
    return out


def model_key(prefix: nn.Module, image_size: int, mean: Sequence[float], std: Sequence[float], resize_short: int,
              interpolation: str, frozen_engine: str, device: torch.device, store: torch.dtype) -> str:
    """Everything a stored feature depends on besides the pixels: the prefix's modules and
    weights (:func:`tlf.features.onnx_prefix.fingerprint`), the eval resize, the frozen-engine
    setting, the device type and the stored dtype."""
    from .onnx_prefix import fingerprint
    weights = fingerprint(prefix, image_size, image_size, mean, std)
    text = f"{FORMAT}|{weights}|{resize_short}|{interpolation}|{frozen_engine}|{device.type}|{store}"
    return hashlib.sha256(text.encode()).hexdigest()[:24]


class FeatureStore:
    """The stored rows of one :func:`model_key`: :meth:`load` gathers them, :meth:`save` adds a file."""

    def __init__(self, key: str, directory: Path | None = None) -> None:
        self.key = key
        self.directory = directory if directory is not None else cache_dir("features")

    def _files(self) -> list[Path]:
        return sorted(self.directory.glob(f"{self.key}-*.npz"), key=lambda p: p.stat().st_mtime, reverse=True)

    def load(self, hashes: np.ndarray) -> np.ndarray | None:
        """The features of the images with these ``hashes`` (rows in their order), or None when
        some image has no stored row."""
        rows_of: dict[bytes, list[int]] = {}
        for i, h in enumerate(hashes):
            rows_of.setdefault(bytes(h), []).append(i)
        missing = set(rows_of)
        found: np.ndarray | None = None
        for path in self._files():
            try:
                with np.load(path) as data:
                    rows = [(row, key) for row, key in enumerate(map(bytes, data["hashes"])) if key in missing]
                    features = data["features"] if rows else None  # read only from a file that has some
            except (OSError, ValueError, KeyError):  # removed by a prune meanwhile, or damaged: recomputed
                continue
            for row, key in rows:
                if found is None:
                    found = np.empty((len(hashes), *features.shape[1:]), dtype=features.dtype)
                found[rows_of[key]] = features[row]
                missing.discard(key)
            if rows:
                os.utime(path)  # recently used: kept by the prune
            if not missing:
                return found
        return None

    def save(self, hashes: np.ndarray, features: np.ndarray) -> Path:
        """Store ``features`` (one row per hash) in a new file, written to a temporary name and
        renamed into place; then prune the folder to :data:`CACHE_BYTES`."""
        from .onnx_prefix import prune
        self.directory.mkdir(parents=True, exist_ok=True)
        name = hashlib.sha256(hashes.tobytes()).hexdigest()[:16]
        path = self.directory / f"{self.key}-{name}.npz"
        atomic_write(path, lambda f: np.savez(f, hashes=hashes, features=features), mode="wb")
        prune(self.directory, keep=path, budget=CACHE_BYTES, pattern="*.npz")
        return path


class StoredPass:
    """The stored frozen features of a run's training and validation images (one view each)."""

    def __init__(self, store: FeatureStore, train_images, val_images) -> None:
        self.store = store
        self.train_hashes, self.val_hashes = pixel_hashes(train_images), pixel_hashes(val_images)

    def load(self) -> tuple[np.ndarray, np.ndarray] | None:
        """(training, validation) features, or None when some image has none stored."""
        both = self.store.load(np.concatenate([self.train_hashes, self.val_hashes]))
        return None if both is None else (both[:len(self.train_hashes)], both[len(self.train_hashes):])

    def save(self, train: torch.Tensor, val: torch.Tensor) -> None:
        features = torch.cat([train, val]).float().contiguous().cpu().numpy()
        self.store.save(np.concatenate([self.train_hashes, self.val_hashes]), features)


def stored_pass(prefix: nn.Module, pooled: bool, views: int, pipeline, train_images, val_images,
                frozen_engine: str, device: torch.device, store: torch.dtype) -> StoredPass | None:
    """The store of a run's frozen pass when its features do not depend on the epoch (``pooled``
    output of the whole backbone, one deterministic view) and its images are decoded already
    (hashing them costs no decode); None otherwise."""
    from ..data.dataset import FileImageSet
    if not pooled or views != 1 or not pipeline.deterministic_train \
            or isinstance(train_images, FileImageSet) or isinstance(val_images, FileImageSet):
        return None
    request = pipeline.request
    key = model_key(prefix, request.image_size, request.mean, request.std, pipeline.resize_short,
                    request.interpolation, frozen_engine, device, store)
    return StoredPass(FeatureStore(key), train_images, val_images)
