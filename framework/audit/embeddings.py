"""One vector per image: the pooled output of the frozen backbone, made exactly as a
``transfer`` run makes its feature cache (:func:`tlf.features.cache.cache_features`: the
decode cache, the frozen engine, and the stored features of :mod:`tlf.features.feature_store`),
so an audit after such a run, or a run after an audit, does not pay the frozen pass again."""
from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass

import numpy as np

from ..config import RunConfig
from ..data import ImageSet, Splits
from ..errors import TlfError


@dataclass
class Embeddings:
    """The audited images (as the loaders read them: decoded once) and their features."""

    plan: RunConfig  # the transfer plan the features were made with (image size fixed)
    splits: Splits
    train_images: ImageSet
    val_images: ImageSet
    train: np.ndarray  # N x D float32, rows in ``train_images`` order
    val: np.ndarray
    engine: str  # what ran the frozen pass ("stored": nothing did)
    seconds: float

    def images(self, split: str) -> ImageSet:
        return self.train_images if split == "train" else self.val_images

    def labels(self, split: str) -> np.ndarray:
        return np.asarray(self.images(split).labels, dtype=np.int64)


def transfer_plan(config: RunConfig) -> RunConfig:
    """``config`` as the ``transfer`` run whose feature cache the audit shares: whole backbone
    frozen, no augmentation (one deterministic view), one epoch planned (no epoch defaults)."""
    from ..plan import resolve
    return resolve(dataclasses.replace(config, policy="transfer", augment="none", epochs=1, warmup_epochs=0.0, head_lr_scale=1.0,
                                       feature_cache="auto", ema=None, sampler="shuffle"))


def embed(config: RunConfig, quiet: bool = False) -> Embeddings:
    """The features of every readable image of ``config``'s dataset under its backbone."""
    from ..data.model_input import to_model_input
    from ..engine.assembly import build_parts
    from ..engine.distributed import World
    from ..features.cache import cache_features, plan_feature_cache
    from ..engine.placement import place
    from ..engine.progress import Reporter

    start = time.perf_counter()
    plan = transfer_plan(config)
    placement = place(plan.device, plan.precision)
    report = Reporter(quiet=quiet)
    parts = build_parts(plan, placement, World(), report)
    if parts.splits.multi_label:  # the label check scores one class per image
        raise TlfError(f"tlf audit checks one label per image, but {parts.splits.name} gives label sets",
                       hint="audit is for single-label data; 'tlf evaluate RUN' lists a multi-label run's most wrong sets")
    prep, config = parts.preprocessing, parts.config

    def to_input(images):
        return to_model_input(images, prep.mean, prep.std, placement.device, channels_last=config.channels_last)

    cache_plan = plan_feature_cache("auto", parts.model, parts.policy, parts.pipeline, False, 1)
    cached = cache_features(cache_plan, parts, config, placement, None, to_input, report) if cache_plan else None
    if cached is None or cached.val is None:
        raise TlfError("the frozen features of this dataset fit neither in memory nor on disk",
                       hint="audit a smaller dataset or a smaller --image-size")
    train, val = (c.features[0].float().reshape(len(c), -1).cpu().numpy() for c in (cached.train, cached.val))
    return Embeddings(config, parts.splits, parts.train_loader.dataset.images, parts.val_loader.dataset.images,
                      train, val, cached.engine, time.perf_counter() - start)
