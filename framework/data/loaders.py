"""DataLoaders of uint8 batches, reproducible per (seed, epoch, index).

The train sampler yields ``(epoch, index)`` pairs, so the epoch reaches persistent
workers with every index and each sample's augmentation is seeded from
``(seed, epoch, index)``: identical batches for identical seeds whatever the number of
workers, new augmentations every epoch.
"""
from __future__ import annotations

import random
from typing import Any, Iterator, Sequence

import cv2
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler
from torch.utils.data.distributed import DistributedSampler

from ..augment import ImageTransform, Pipeline, sample_seed
from ..errors import TlfError
from ..messages import notice
from . import cache as decode_cache
from .dataset import ArrayImageSet, ImageSet, Problem, Splits, report_skipped
from .reading import UnreadableImage


CACHE_MODES = ("auto", "ram", "disk", "off")
SHUFFLE_STREAM = 2**32  # sample_seed(seed, epoch, SHUFFLE_STREAM) seeds the order; indices are smaller


class ImageDataset(Dataset):
    """Items are ``(uint8 HxWx3 tensor, label)``; train items are indexed by ``(epoch, index)``."""

    def __init__(self, images: ImageSet, transform: ImageTransform, seed: int, train: bool) -> None:
        self.images = images
        self.transform = transform
        self.seed = seed
        self.train = train
        self.skipped: set[int] = set()  # images found unreadable while streaming, in this process

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, item: int | tuple[int, int]) -> tuple[torch.Tensor, int | torch.Tensor]:
        epoch, index = item if isinstance(item, tuple) else (0, item)
        image = self._load(index)
        seed = sample_seed(self.seed, epoch, index) if self.train else None
        return torch.from_numpy(self.transform(image, seed)), target(self.images.labels, index)

    def _load(self, index: int) -> np.ndarray:
        """Streaming from files: an unreadable image is replaced by the next one, and reported
        the first time this process meets it (each loader worker is a process of its own)."""
        for attempt in range(len(self.images)):
            i = (index + attempt) % len(self.images)
            try:
                return self.images.load(i)
            except UnreadableImage as exc:
                if i not in self.skipped:
                    self.skipped.add(i)
                    report_skipped([Problem(self.images.key(i), getattr(exc, "reason", str(exc)))])
        raise TlfError("no readable image in the dataset", hint="'tlf data show' lists the problems")


def collate(batch: list[tuple[torch.Tensor, int | torch.Tensor]]) -> tuple[torch.Tensor, torch.Tensor]:
    """HWC samples -> (uint8 Nx3xHxW in channels_last memory format, int64 N class indices, or
    float32 N x C multi-hot rows for multi-label data)."""
    images = torch.stack([b[0] for b in batch]).permute(0, 3, 1, 2)
    if isinstance(batch[0][1], torch.Tensor):
        return images, torch.stack([b[1] for b in batch])
    return images, torch.tensor([b[1] for b in batch], dtype=torch.int64)


class EpochSampler(Sampler):
    """Shuffles per epoch (seeded) and yields ``(epoch, index)``; each pass advances the
    epoch unless :meth:`set_epoch` chose it. With ``distributed`` it yields this rank's share.

    With ``weights`` (one per sample) it draws with replacement in proportion to them
    (``--sampler balanced``), as torch's WeightedRandomSampler does; torch has no
    distributed form of that, so every rank makes the same seeded draw and takes every
    world-size-th sample of it."""

    def __init__(self, size: int, seed: int, distributed: bool = False, drop_last: bool = False,
                 weights: np.ndarray | None = None) -> None:
        self.size, self.seed, self.epoch = size, seed, 0
        self.dist: Any = None
        self.weights = None if weights is None else torch.as_tensor(weights, dtype=torch.float64)
        self.rank, self.world = 0, 1
        if distributed:
            self.dist = DistributedSampler(range(size), shuffle=True, seed=seed, drop_last=drop_last)
            self.rank, self.world = self.dist.rank, self.dist.num_replicas

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        if self.weights is not None:
            return -(-self.size // self.world)
        return len(self.dist) if self.dist is not None else self.size

    def __iter__(self) -> Iterator[tuple[int, int]]:
        epoch = self.epoch
        self.epoch += 1
        generator = torch.Generator().manual_seed(sample_seed(self.seed, epoch, SHUFFLE_STREAM))
        if self.weights is not None:
            draw = torch.multinomial(self.weights, len(self) * self.world, replacement=True, generator=generator)
            order = draw[self.rank::self.world].tolist()
        elif self.dist is not None:
            self.dist.set_epoch(epoch)
            order = list(self.dist)
        else:
            order = torch.randperm(self.size, generator=generator).tolist()
        return iter([(epoch, i) for i in order])


class TrainLoader(DataLoader):
    """A DataLoader with :meth:`set_epoch` (reseeds shuffling and augmentation)."""

    def set_epoch(self, epoch: int) -> None:
        self.sampler.set_epoch(epoch)


def _worker_init(worker_id: int) -> None:
    seed = torch.initial_seed() % 2**32  # distinct per worker, derived from the loader's generator
    np.random.seed(seed)
    random.seed(seed)


# what each decode-cache mode does, in the words of the line that announces it
CACHE_WORDS = {"off": "not cached", "ram": "decoded once and kept in memory",
               "disk": "decoded once into a cache on disk, reused by later runs"}


def choose_cache(splits: Splits, pipeline: Pipeline, cache: str,
                 layouts: dict[int, decode_cache.Plan] | None = None,
                 sets: Sequence[ImageSet] | None = None) -> tuple[str, str]:
    """``(mode, why)``: the cache mode to use for ``cache`` ("auto" decided by the size of
    ``sets``, by default the train and validation images).

    The layouts planned to decide (from image headers) are put in ``layouts`` by ``id`` of
    the image set, for the build to reuse."""
    if cache not in CACHE_MODES:
        raise TlfError(f"unknown cache mode {cache!r}", hint=f"choose one of: {', '.join(CACHE_MODES)}")
    if cache != "auto":
        return cache, f"cache={cache}"
    sets = [splits.train, splits.val] if sets is None else list(sets)
    if all(isinstance(s, ArrayImageSet) for s in sets):
        return "off", "they are already decoded in memory"
    directory = decode_cache.cache_dir("decoded")
    if all(decode_cache.find(s, pipeline.resize_short, pipeline.request.interpolation, directory)[2] for s in sets):
        return "disk", "a decode cache exists"
    plans = {id(s): decode_cache.plan(s, pipeline.resize_short) for s in sets}
    if layouts is not None:
        layouts.update(plans)
    need = sum(p.nbytes for p in plans.values())
    budget = min(decode_cache.cache_budget(), int(0.9 * decode_cache.free_bytes(directory)))
    if need > budget:
        return "off", f"decoded images need {need / 2**30:.2f} GiB, over the {budget / 2**30:.2f} GiB budget " \
                      f"(set {decode_cache.BUDGET_ENV} or cache='disk')"
    return "disk", f"decoded images need {need / 2**30:.2f} GiB (budget {budget / 2**30:.2f} GiB)"


def _source(images: ImageSet, splits: Splits, pipeline: Pipeline, mode: str,
            layouts: dict[int, decode_cache.Plan]) -> ImageSet:
    if mode == "off":
        return images
    persist = mode == "disk"
    directory = decode_cache.cache_dir("decoded") if persist else decode_cache.ram_directory()
    result = decode_cache.build(images, pipeline, directory, persist=persist, layout=layouts.get(id(images)))
    known = {(p.path, p.reason) for p in splits.problems}
    splits.problems.extend(p for p in result.images.problems if (p.path, p.reason) not in known)
    if len(result.images) == 0:
        raise TlfError(f"no readable image in {splits.name}", hint="'tlf data show' lists the problems")
    return result.images


def _decoded(splits: Splits, pipeline: Pipeline, sets: Sequence[ImageSet], *, workers: int, cache: str,
             distributed: bool) -> tuple[list[ImageSet], str]:
    """``sets`` as the loaders read them (decoded once unless the cache is off) and the
    cache mode; in a distributed run rank 0 decodes first and the others open its cache."""
    if workers > 0:
        # Workers are the parallelism; an OpenCV thread pool inherited through fork deadlocks
        # the first worker that touches it, so OpenCV runs single-threaded in this process.
        cv2.setNumThreads(0)
    if distributed and not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        raise TlfError("distributed loaders need torch.distributed initialized", hint="launch with torchrun")
    layouts: dict[int, decode_cache.Plan] = {}
    mode, why = choose_cache(splits, pipeline, cache, layouts, sets)
    notice(f"images: {CACHE_WORDS[mode]} ({why}; --cache sets this)", once=f"cache {mode}")
    rank0_first = distributed and mode == "disk"
    if rank0_first and torch.distributed.get_rank() != 0:
        torch.distributed.barrier()
    sources = [_source(images, splits, pipeline, mode, layouts) for images in sets]
    if rank0_first and torch.distributed.get_rank() == 0:
        torch.distributed.barrier()
    report_skipped(splits.problems)  # the dataset's scan and the decode cache's, once
    return sources, mode


def _loader_options(workers: int, pin_memory: bool | None, prefetch: int) -> dict[str, Any]:
    return dict(num_workers=workers, pin_memory=torch.cuda.is_available() if pin_memory is None else pin_memory,
                collate_fn=collate, worker_init_fn=_worker_init, persistent_workers=workers > 0,
                prefetch_factor=prefetch if workers > 0 else None)


def target(labels: np.ndarray, index: int) -> int | torch.Tensor:
    """Image ``index``'s training target: its class index, or its multi-hot row as float32 (what
    binary cross-entropy takes; batches of them collate to N x C)."""
    return int(labels[index]) if labels.ndim == 1 else torch.from_numpy(labels[index].astype(np.float32))


def targets(labels: np.ndarray) -> torch.Tensor:
    """All the targets of a set at once (the feature cache's), as :func:`target` gives them one by one."""
    return torch.as_tensor(labels) if labels.ndim == 1 else torch.from_numpy(labels.astype(np.float32))


def _eval_loader(dataset: ImageDataset, batch_size: int, distributed: bool, options: dict[str, Any]) -> DataLoader:
    sampler = None
    if distributed:
        sampler = DistributedSampler(dataset, shuffle=False)  # pads to equal shares
    return DataLoader(dataset, batch_size=batch_size, shuffle=False, drop_last=False, sampler=sampler,
                      generator=torch.Generator().manual_seed(dataset.seed), **options)


def balanced_weights(labels: np.ndarray) -> np.ndarray:
    """Per-sample draw weights that make every class equally likely: 1 / its class's count."""
    labels = np.asarray(labels, dtype=np.int64)
    if labels.ndim != 1:
        raise TlfError("--sampler balanced draws one class per image; multi-label images have several",
                       hint="use --class-weights auto (a pos_weight per class) for rare labels instead")
    return 1.0 / np.bincount(labels)[labels]


def _check_batch_size(batch_size: int) -> None:
    if batch_size < 1:
        raise TlfError(f"batch size must be positive, got {batch_size}", hint="use e.g. --batch-size 64")


def build_loaders(splits: Splits, pipeline: Pipeline, *, batch_size: int, workers: int, seed: int,
                  cache: str = "auto", distributed: bool = False, drop_last: bool = True,
                  pin_memory: bool | None = None, prefetch: int = 4,
                  balanced: bool = False) -> tuple[TrainLoader, DataLoader]:
    """Train and validation loaders of ``(uint8 Nx3xSxS, int64 N)`` batches.

    ``cache``: "disk" decodes once into a memory-mapped file under ``cache_dir("decoded")``
    reused across runs; "ram" the same in RAM-backed /dev/shm, for this process only;
    "off" decodes from the files every time; "auto" is "disk" when the decoded images fit
    the budget (``$TLF_CACHE_BUDGET``, default a quarter of the RAM), else "off".
    Unreadable images found while caching are skipped and added to ``splits.problems``.
    ``balanced`` draws the training images with replacement, each class equally often
    (``--sampler balanced``), instead of shuffling them.
    """
    _check_batch_size(batch_size)
    (train_images, val_images), mode = _decoded(splits, pipeline, [splits.train, splits.val], workers=workers,
                                                cache=cache, distributed=distributed)
    options = _loader_options(workers, pin_memory, prefetch)
    train_set = ImageDataset(train_images, pipeline.train_transform, seed, True)
    train = TrainLoader(train_set, batch_size=batch_size, drop_last=drop_last and len(train_set) >= batch_size,
                        sampler=EpochSampler(len(train_set), seed, distributed, drop_last,
                                             balanced_weights(train_images.labels) if balanced else None),
                        generator=torch.Generator().manual_seed(seed), **options)
    val = _eval_loader(ImageDataset(val_images, pipeline.eval_transform, seed, False), batch_size, distributed,
                       options)
    train.cache_mode = val.cache_mode = mode
    return train, val


def build_eval_loader(splits: Splits, pipeline: Pipeline, *, batch_size: int, workers: int, seed: int,
                      cache: str = "auto", pin_memory: bool | None = None, prefetch: int = 4) -> DataLoader:
    """The validation loader alone, as :func:`build_loaders` makes it; only the validation
    images are decoded (and cached)."""
    _check_batch_size(batch_size)
    (val_images,), mode = _decoded(splits, pipeline, [splits.val], workers=workers, cache=cache, distributed=False)
    val = _eval_loader(ImageDataset(val_images, pipeline.eval_transform, seed, False), batch_size, False,
                       _loader_options(workers, pin_memory, prefetch))
    val.cache_mode = mode
    return val


__all__ = ["CACHE_MODES", "EpochSampler", "ImageDataset", "TrainLoader", "build_eval_loader", "build_loaders",
           "choose_cache", "collate", "target", "targets"]
