"""Where a run's batches come from, hidden from the loop: the live loader through the whole
(wrapped) model, or the cached frozen features through the trainable remainder.

:class:`BatchSource` decides once (:meth:`BatchSource.prepare`, with
:func:`tlf.features.cache.plan_feature_cache`) and from then on hands the loop its
training batches, the module that consumes them, and the validation logits of any set of
weights (the raw model, its EMA copy). Wrapping for torch.distributed and ``torch.compile``
happens here too, so the loop never sees a rank or a cache.
"""
from __future__ import annotations

from typing import Any, Callable, Iterator

import torch
from torch import nn

from . import distributed as ddp
from .eval_engine import ValidationEngine, predict_logits
from ..features.cache import CachedFeatures, cache_features, plan_feature_cache
from .placement import Placement


class BatchSource:
    """The training and validation batches of one run (``parts``: :class:`~tlf.engine.parts.TrainingParts`)."""

    def __init__(self, parts: Any, placement: Placement, world: ddp.World, report: Any) -> None:
        self.parts, self.config, self.placement, self.world, self.report = parts, parts.config, placement, world, report
        prep = parts.preprocessing
        self.validation = ValidationEngine(self.config.frozen_engine, placement, prep.mean, prep.std,
                                           world.distributed, report.info)
        self.cached: CachedFeatures | None = None  # the frozen features, when the run caches them
        self.module: nn.Module = parts.model  # what the loop calls on a batch

    def to_input(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 images -> the normalized model input on the run's device."""
        from ..data.model_input import to_model_input
        prep = self.parts.preprocessing
        return to_model_input(images, prep.mean, prep.std, self.placement.device, channels_last=self.config.channels_last)

    def wrap(self) -> None:
        """The module the loop calls: DDP and/or torch.compile around the plain model (or the
        cached features' remainder)."""
        if self.cached is not None:
            self.module = self.cached.remainder
            return
        module: nn.Module = self.parts.model
        device = self.placement.device
        if self.world.distributed:
            module = nn.parallel.DistributedDataParallel(module, device_ids=[device.index] if device.type == "cuda" else None)
        if self.config.compile:
            module = torch.compile(module)
        self.module = module

    def prepare(self, epochs_left: int, resumed_views: int | None, ema_model: nn.Module | None) -> None:
        """Wrap the model, and cache the frozen features when :func:`plan_feature_cache` allows it and they fit."""
        self.wrap()
        plan = plan_feature_cache(self.config.feature_cache, self.parts.model, self.parts.policy, self.parts.pipeline,
                                  self.world.distributed, epochs_left, resumed_views)
        if plan is not None:
            self.cached = cache_features(plan, self.parts, self.config, self.placement, ema_model, self.to_input,
                                         self.report)
            self.wrap()

    @property
    def batch_transform(self) -> Callable | None:
        """The batch-level augmentation (mixup, cutmix): live batches only."""
        return self.parts.pipeline.batch if self.cached is None else None

    def train_batches(self, epoch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """``epoch``'s training batches, on the device: model inputs, or cached features in the loader's order."""
        loader = self.parts.train_loader
        loader.set_epoch(epoch)
        if self.cached is not None:
            order = torch.tensor([index for _, index in loader.sampler])
            return self.cached.train.batches(epoch, self.config.batch_size, order)
        device = self.placement.device
        return ((self.to_input(x), y.to(device, non_blocking=True)) for x, y in loader)

    def steps_per_epoch(self) -> int:
        """Training batches an epoch."""
        if self.cached is not None:
            return self.cached.train.steps_per_epoch(self.config.batch_size)
        return len(self.parts.train_loader)

    def validation_logits(self, weights: str, model: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
        """This process's validation logits and labels under ``model`` (``weights``: ``raw`` or ``ema``)."""
        if self.cached is not None and self.cached.val is not None:
            batches = self.cached.val.batches(0, self.config.batch_size, drop_last=False)
            remainder = self.cached.remainder if weights == "raw" else self.cached.ema_remainder
            return predict_logits(remainder, batches, lambda features: features, self.placement)
        return self.validation.logits(model, self.parts.val_loader, self.to_input)

    def describe(self) -> dict[str, Any]:
        """The summary's entries on the engines that ran."""
        cached = self.cached
        return {"feature_cache": cached is not None, "frozen_engine": cached.engine if cached is not None else None,
                "feature_cache_on_disk": cached is not None and cached.train.on_disk,
                "validation_engine": "torch, on the cached features" if cached is not None and cached.val is not None
                else self.validation.note}
