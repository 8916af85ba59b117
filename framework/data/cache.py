"""Decode once: every image decoded a single time, downscaled so its short side is what
the transforms need, and kept as uint8 in one memory-mapped file shared by all workers.

Layout (``<family>-<fingerprint>``, under ``cache_dir("decoded")``):

- ``.u8``: the images' bytes back to back (HxWx3 each, variable aspect ratios);
- ``.npz``: the index: ``offsets`` (int64), ``shapes`` (Nx2 int32), ``valid`` (bool)
  and ``meta`` (JSON: version, fingerprint, short side, interpolation, problems).

Both files are written under temporary names and renamed into place (index last), so a
reader sees a complete cache or none. ``family`` identifies the image list and the
resize; ``fingerprint`` changes when a file changes, which makes a new cache (and the
old one of the same family is deleted). Workers map the file themselves: nothing big is
pickled.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import weakref
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..augment import short_side_shape
from ..errors import TlfError
from ..messages import notice
from ..paths import cache_dir
from ..resources import usable_cpus
from ..safe_files import alive, atomic_write, new_temp, remove_stale_temps, rename_synced
from .dataset import ArrayImageSet, FileImageSet, ImageSet, Problem
from .reading import UnreadableImage, image_size


CACHE_VERSION = 1
DEFAULT_RAM_FRACTION = 0.25
BUDGET_ENV = "TLF_CACHE_BUDGET"


def parse_bytes(text: str) -> int:
    """``"2G"``, ``"512M"``, ``"1000000"`` -> bytes."""
    text = text.strip().upper().removesuffix("B")
    factor = {"K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}.get(text[-1:], 1)
    return int(float(text[:-1] if factor > 1 else text) * factor)


def cache_budget() -> int:
    """Bytes the decode cache may use: ``$TLF_CACHE_BUDGET`` or a quarter of the RAM."""
    if os.environ.get(BUDGET_ENV):
        try:
            return parse_bytes(os.environ[BUDGET_ENV])
        except ValueError:
            raise TlfError(f"{BUDGET_ENV}={os.environ[BUDGET_ENV]!r} is not a size",
                           hint="write bytes or a size like 4G or 512M") from None
    return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") * DEFAULT_RAM_FRACTION)


def _probe(images: ImageSet, index: int) -> tuple[int, int] | None:
    """(height, width) of image ``index`` without decoding it when possible; None if unknown."""
    if isinstance(images, ArrayImageSet):
        return images.images.shape[1], images.images.shape[2]
    if isinstance(images, FileImageSet):
        size = image_size(images.paths[index])  # None when unreadable or refused: the decode pass reports why
        return (size[1], size[0]) if size else None
    return images.load(index).shape[:2]


@dataclass
class Plan:
    """Where each image goes in the cache file."""

    shapes: np.ndarray  # Nx2 planned (height, width); 0 when the header could not be read
    offsets: np.ndarray  # N int64
    nbytes: int


def plan(images: ImageSet, short: int, threads: int | None = None) -> Plan:
    """Read the image headers and lay the cache out (exact bytes before decoding anything)."""
    with ThreadPoolExecutor(threads or usable_cpus()) as pool:
        sizes = list(pool.map(lambda i: _probe(images, i), range(len(images))))
    shapes = np.array([short_side_shape(*s, short) if s else (0, 0) for s in sizes], dtype=np.int64).reshape(-1, 2)
    slot = shapes[:, 0] * shapes[:, 1] * 3
    offsets = np.concatenate([[0], np.cumsum(slot)[:-1]]).astype(np.int64)
    return Plan(shapes, offsets, int(slot.sum()))


def _family(images: ImageSet, short: int, interpolation: str) -> str:
    h = hashlib.sha256(f"{CACHE_VERSION}\0{type(images).__name__}\0{short}\0{interpolation}\n".encode())
    for i in range(len(images)):
        h.update(images.key(i).encode() + b"\n")
    return h.hexdigest()[:16]


class DecodedImages(ImageSet):
    """The readable images of a source :class:`ImageSet`, served from a decode-once cache."""

    def __init__(self, data_path: Path, index_path: Path, source: ImageSet) -> None:
        with np.load(index_path) as index:
            self.meta = json.loads(str(index["meta"]))
            valid = index["valid"]
            self.offsets = index["offsets"][valid]
            self.shapes = index["shapes"][valid]
        self.source_indices = np.flatnonzero(valid)
        self.labels = source.labels[self.source_indices]
        self.source = source
        self.data_path, self.index_path = data_path, index_path
        self.problems = [Problem(**p) for p in self.meta["problems"]]
        self._map: np.memmap | None = None

    @property
    def nbytes(self) -> int:
        """Bytes of cached pixels."""
        return int(self.meta["nbytes"])

    def __len__(self) -> int:
        return len(self.offsets)

    def load(self, index: int) -> np.ndarray:
        if self._map is None:  # opened in each process on first use
            self._map = np.memmap(self.data_path, dtype=np.uint8, mode="r")
        h, w = self.shapes[index]
        start = self.offsets[index]
        return self._map[start:start + h * w * 3].reshape(h, w, 3)

    def key(self, index: int) -> str:
        return self.source.key(int(self.source_indices[index]))

    def fingerprint(self) -> str:
        return self.meta["fingerprint"]

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_map": None}


@dataclass
class CacheResult:
    """A cache ready to read, and what it took."""

    images: DecodedImages
    built: bool  # False: an existing cache was reused
    decoded: int  # images decoded by this call


def find(images: ImageSet, short: int, interpolation: str, directory: Path) -> tuple[Path, Path, bool]:
    """Paths of the cache for ``images`` and whether a complete one exists."""
    stem = f"{_family(images, short, interpolation)}-{images.fingerprint()}"
    data, index = directory / f"{stem}.u8", directory / f"{stem}.npz"
    return data, index, data.exists() and index.exists()


def build(images: ImageSet, pipeline: Any, directory: Path | None = None, *, persist: bool = True,
          threads: int | None = None, layout: Plan | None = None) -> CacheResult:
    """Open the decode cache of ``images`` for ``pipeline`` (its ``resize_short``), building it if needed.

    ``persist=False`` makes a private cache (e.g. in /dev/shm) deleted with the returned object.
    Unreadable images are skipped and listed in ``result.images.problems``.
    """
    short, interpolation = pipeline.resize_short, pipeline.request.interpolation
    directory = Path(directory) if directory is not None else cache_dir("decoded")
    directory.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(directory)  # builds interrupted by a kill
    data_path, index_path, exists = find(images, short, interpolation, directory)
    if not persist:
        _remove_orphans(directory)
        unique = f"{os.getpid()}-{id(images):x}"
        data_path = data_path.with_name(f"{data_path.stem}-{unique}.u8")
        index_path = index_path.with_name(f"{index_path.stem}-{unique}.npz")
        exists = False
    if exists:
        try:
            return CacheResult(DecodedImages(data_path, index_path, images), built=False, decoded=0)
        except Exception as exc:  # a damaged index: rebuild it
            notice(f"decode cache {index_path} is unreadable ({exc}); rebuilding")
    layout = layout or plan(images, short, threads)
    decoded = _write(images, pipeline, layout, data_path, index_path, threads)
    if persist:
        family = data_path.name.split("-")[0]
        for stale in directory.glob(f"{family}-*"):
            if stale not in (data_path, index_path):  # (temp files are hidden: another build's stay)
                stale.unlink(missing_ok=True)
    result = CacheResult(DecodedImages(data_path, index_path, images), built=True, decoded=decoded)
    if not persist:
        weakref.finalize(result.images, _remove, data_path, index_path)
    return result


def _remove(*paths: Path) -> None:
    for path in paths:
        path.unlink(missing_ok=True)


def _remove_orphans(directory: Path) -> None:
    """Delete private caches (``<stem>-<pid>-<id>.*``) left by processes that no longer exist."""
    for path in directory.glob("*-*-*-*.*"):
        pid = path.name.split("-")[2]
        if pid.isdigit() and not alive(int(pid)):
            path.unlink(missing_ok=True)


def _write(images: ImageSet, pipeline: Any, layout: Plan, data_path: Path, index_path: Path,
           threads: int | None) -> int:
    """Decode every image into a new cache: the data file, then its index, each written under a
    temporary name, synced and renamed into place (nothing is left behind on failure); returns
    images decoded."""
    tmp = new_temp(data_path)
    try:
        slots, late, problems = _decode_planned(images, pipeline.resize, layout, tmp, threads)
        _append_late(tmp, slots, late)
        meta = {"version": CACHE_VERSION, "fingerprint": images.fingerprint(), "short": pipeline.resize_short,
                "interpolation": pipeline.request.interpolation, "count": len(images), "nbytes": slots.nbytes,
                "problems": [{"path": p.path, "reason": p.reason} for p in problems]}
        rename_synced(tmp, data_path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _write_index(index_path, slots, meta)  # last: a reader sees a complete cache or none
    return len(images)


@dataclass
class _Slots:
    """Where each decoded image lies in the cache file: the index's arrays, and the file's size."""

    offsets: np.ndarray  # N int64
    shapes: np.ndarray  # Nx2 int32 (height, width)
    valid: np.ndarray  # N bool: decoded and in the file
    nbytes: int


def _decode_planned(images: ImageSet, resize: Any, layout: Plan, path: Path,
                    threads: int | None) -> tuple[_Slots, list[tuple[int, np.ndarray]], list[Problem]]:
    """Decode every image (parallel threads) straight into its planned place in ``path``.

    Returns the slots filled, the images whose size differed from the plan (``(index, image)``:
    headers unreadable but the image decoded, or a file changed meanwhile) and the unreadable ones."""
    n = len(images)
    slots = _Slots(layout.offsets.copy(), np.zeros((n, 2), dtype=np.int32), np.zeros(n, dtype=bool), layout.nbytes)
    with open(path, "r+b") as f:
        f.truncate(max(layout.nbytes, 1))
    mm = np.memmap(path, dtype=np.uint8, mode="r+", shape=(max(layout.nbytes, 1),))

    def decode(i: int) -> np.ndarray | Problem | None:
        try:
            image = resize(images.load(i))
        except UnreadableImage as exc:
            return Problem(images.key(i), getattr(exc, "reason", str(exc)))
        h, w = image.shape[:2]
        if h * w * 3 != layout.shapes[i, 0] * layout.shapes[i, 1] * 3:
            return image  # size unknown when planned: appended afterwards
        mm[slots.offsets[i]:slots.offsets[i] + image.size] = image.reshape(-1)
        slots.shapes[i] = h, w
        slots.valid[i] = True
        return None

    with ThreadPoolExecutor(threads or usable_cpus()) as pool:
        leftovers = [(i, r) for i, r in enumerate(pool.map(decode, range(n))) if r is not None]
    mm.flush()
    del mm
    late = [(i, r) for i, r in leftovers if isinstance(r, np.ndarray)]
    return slots, late, [r for _, r in leftovers if isinstance(r, Problem)]


def _append_late(path: Path, slots: _Slots, late: list[tuple[int, np.ndarray]]) -> None:
    """Write the images the plan had no place for after the planned layout (rare), and record their slots."""
    if not late:
        return
    with open(path, "r+b") as f:
        f.seek(slots.nbytes)
        for i, image in late:
            slots.offsets[i] = slots.nbytes
            f.write(np.ascontiguousarray(image).tobytes())
            slots.nbytes += image.size
            slots.shapes[i] = image.shape[:2]
            slots.valid[i] = True


def _write_index(index_path: Path, slots: _Slots, meta: dict[str, Any]) -> None:
    """The index (slots and ``meta``), written whole and synced at ``index_path`` (:func:`atomic_write`)."""
    atomic_write(index_path, lambda f: np.savez(f, offsets=slots.offsets, shapes=slots.shapes, valid=slots.valid,
                                                meta=np.array(json.dumps(meta))), "wb")


def ram_directory() -> Path:
    """Where non-persistent caches go: /dev/shm when it exists (RAM-backed), else the temp folder."""
    shm = Path("/dev/shm")
    base = shm if shm.is_dir() and os.access(shm, os.W_OK) else Path(tempfile.gettempdir())
    return base / f"tlf-decoded-{os.getuid()}"


def free_bytes(directory: Path) -> int:
    """Free space where ``directory`` (or its nearest existing parent) lives."""
    path = Path(directory)
    while not path.exists() and path != path.parent:
        path = path.parent
    return shutil.disk_usage(path).free
