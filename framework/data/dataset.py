"""What a dataset plugin returns: train/val image sets with class names.

An :class:`ImageSet` hands out decoded RGB uint8 images by index; the loaders, the
decode cache and the feature cache only ever see this interface.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from ..messages import notice
from ..paths import cache_dir
from .reading import read_rgb


def _default_cache() -> Path:
    return cache_dir("datasets")


@dataclass(frozen=True)
class DatasetRequest:
    """What the user asked of a dataset plugin (besides the ``name:ARG`` argument)."""

    cache_dir: Path = field(default_factory=_default_cache)  # downloads and extracted archives ($TLF_HOME/datasets)
    data_dir: Path | None = None  # --data-dir: an existing copy to use instead of downloading
    download: bool = True  # False: never touch the network, fail with where to put files
    val_split: float = 0.2  # fraction held out when the data has no validation split
    seed: int = 0  # split seed
    strict: bool = False  # unreadable images are an error instead of being skipped


@dataclass(frozen=True)
class Problem:
    """A file that was skipped, and why."""

    path: str
    reason: str


SHOWN_PROBLEMS = 3  # skipped files named in the one-line report; 'tlf data show' lists them all


def report_skipped(problems: Sequence[Problem]) -> None:
    """Tell the user, in one line, how many unreadable files were skipped and which the first
    few are (:func:`tlf.messages.notice`); nothing when there are none."""
    if not problems:
        return
    named = ", ".join(f"{p.path} ({p.reason})" for p in problems[:SHOWN_PROBLEMS])
    more = f" and {len(problems) - SHOWN_PROBLEMS} more" if len(problems) > SHOWN_PROBLEMS else ""
    notice(f"skipped {len(problems)} unreadable image(s): {named}{more}; 'tlf data show' lists them", once=True)


class ImageSet:
    """A labelled set of images. Subclasses implement ``__len__``, ``load`` and ``key``.

    ``labels`` is int64: one class index per image (shape ``(N,)``, single-label data), or
    one multi-hot row of 0/1 per image (shape ``(N, C)``, multi-label data: the classes an
    image shows)."""

    labels: np.ndarray

    def __len__(self) -> int:
        raise NotImplementedError

    def load(self, index: int) -> np.ndarray:
        """Image ``index`` as an HxWx3 uint8 RGB array."""
        raise NotImplementedError

    def key(self, index: int) -> str:
        """A stable identity for image ``index`` (used to validate caches)."""
        raise NotImplementedError

    def fingerprint(self) -> str:
        """Changes whenever the images change (cache invalidation)."""
        raise NotImplementedError


class FileImageSet(ImageSet):
    """Images stored as files, decoded on ``load``."""

    def __init__(self, paths: Sequence[Path], labels: Sequence[int] | np.ndarray) -> None:
        if len(paths) != len(labels):
            raise ValueError("paths and labels differ in length")
        self.paths = [Path(p) for p in paths]
        self.labels = np.asarray(labels, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.paths)

    def load(self, index: int) -> np.ndarray:
        return read_rgb(self.paths[index])

    def key(self, index: int) -> str:
        return str(self.paths[index])

    def fingerprint(self) -> str:
        h = hashlib.sha256()
        for path, label in zip(self.paths, self.labels):
            st = path.stat()
            h.update(f"{path}\0{label}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
        return h.hexdigest()[:16]


class ArrayImageSet(ImageSet):
    """Images already in memory as one NxHxWx3 uint8 array (CIFAR-10, synthetic data)."""

    def __init__(self, images: np.ndarray, labels: Sequence[int] | np.ndarray, name: str = "array") -> None:
        if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
            raise ValueError(f"expected NxHxWx3 uint8 images, got {images.shape} {images.dtype}")
        if len(images) != len(labels):
            raise ValueError("images and labels differ in length")
        self.images = images
        self.labels = np.asarray(labels, dtype=np.int64)
        self.name = name

    def __len__(self) -> int:
        return len(self.images)

    def load(self, index: int) -> np.ndarray:
        return self.images[index]

    def key(self, index: int) -> str:
        return f"{self.name}[{index}]"

    def fingerprint(self) -> str:
        h = hashlib.sha256(self.images.tobytes())
        h.update(self.labels.tobytes())
        return h.hexdigest()[:16]


@dataclass
class Splits:
    """A dataset ready to train on."""

    name: str  # e.g. "flowers" or "folder:/data/x"
    classes: list[str]
    train: ImageSet
    val: ImageSet
    root: Path | None = None  # where the files are, when on disk
    problems: list[Problem] = field(default_factory=list)
    split: str = ""  # how train/val were made, in words ("folders train/ and val/", "seeded ...")
    edits: dict = field(default_factory=dict)  # what --exclude/--relabel changed (tlf.data.edits)
    test: ImageSet | None = None  # a held-out test split, when the data has one (never used to pick a checkpoint)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def multi_label(self) -> bool:
        """Whether images carry label sets (multi-hot ``labels``) rather than one class each."""
        return self.train.labels.ndim == 2
