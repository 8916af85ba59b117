"""Frozen features that do not fit in memory, kept in a memory-mapped file on disk instead.

The file is created exclusively with an unpredictable name in ``$TLF_HOME/feature-spill``
(:func:`tlf.safe_files.create_temp`), its blocks are reserved up front (``posix_fallocate``: a
full disk is found now, not as a ``SIGBUS`` when a page is first written), it is mapped through
the descriptor mkstemp opened (nothing swapped in at that name is followed), and its name is
unlinked at once: the data lives until the mapping goes (the end of the run, or the process's
death, even by ``SIGKILL``), and nothing is left in the folder. A temp file whose process died
between creating and unlinking it is removed by :func:`tlf.paths.cache_dir`, as in every cache.

Hand-written because no library maps an anonymous, already-unlinked file into a tensor of any
dtype: ``numpy.memmap`` has no bfloat16 and ``torch.from_file`` opens the file by name.
"""
from __future__ import annotations

import math
import mmap
import os
import shutil
from pathlib import Path

import torch

from ..paths import cache_dir
from ..safe_files import create_temp

SPILL_FOLDER = "feature-spill"


class NoRoom(Exception):
    """The spill file could not be made: ``needed`` bytes, ``free`` bytes free in ``folder``, and why."""

    def __init__(self, folder: Path, needed: int, free: int | None, why: str) -> None:
        super().__init__(why)
        self.folder, self.needed, self.free, self.why = folder, needed, free, why


def spill_folder() -> Path:
    """``$TLF_HOME/feature-spill`` (not created), without the temp files of dead runs."""
    return cache_dir(SPILL_FOLDER)


def disk_tensor(shape: tuple[int, ...], dtype: torch.dtype, folder: Path | None = None) -> torch.Tensor:
    """A zeroed CPU tensor of ``shape`` and ``dtype`` backed by a memory-mapped, already unlinked file
    in ``folder`` (default :func:`spill_folder`); :class:`NoRoom` when the disk cannot hold it."""
    folder = spill_folder() if folder is None else folder
    needed = max(1, math.prod(shape) * torch.empty((), dtype=dtype).element_size())
    try:
        fd, path = create_temp(folder / "frozen-features.bin")
    except OSError as exc:
        raise NoRoom(folder, needed, _free(folder), exc.strerror or type(exc).__name__) from None
    try:
        _reserve(fd, needed, folder)
        mapped = mmap.mmap(fd, needed)  # dups the descriptor: the mapping outlives ours and the name
    except OSError as exc:
        raise NoRoom(folder, needed, _free(folder), exc.strerror or type(exc).__name__) from None
    finally:
        os.close(fd)
        path.unlink(missing_ok=True)
    return torch.frombuffer(mapped, dtype=torch.uint8).view(dtype).view(shape)


def _reserve(fd: int, needed: int, folder: Path) -> None:
    """Give the file ``needed`` bytes of real disk blocks (where the OS can), so writes cannot fail later."""
    if hasattr(os, "posix_fallocate"):
        os.posix_fallocate(fd, 0, needed)
        return
    free = _free(folder)
    if free is not None and free < needed:
        raise NoRoom(folder, needed, free, "not enough free space")
    os.ftruncate(fd, needed)


def _free(folder: Path) -> int | None:
    """Free bytes on ``folder``'s disk (its nearest existing parent's), None when unknown."""
    for place in (folder, *folder.parents):
        try:
            return shutil.disk_usage(place).free
        except OSError:
            continue
    return None
