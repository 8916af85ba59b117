"""Assembling a run from its plan: policy -> dataset -> model -> freezing -> micro-batch -> pipeline -> loaders,
each resolution step of :class:`tlf.plan.Resolution` taken as its inputs are built."""
from __future__ import annotations

from pathlib import Path

import torch

from ..adaptive_defaults import describe
from ..config import RunConfig
from ..data.run_data import load_splits, pipeline_for
from ..plan import Resolution
from . import distributed as ddp
from .micro_batch import fit_micro_batch
from .parts import TrainingParts


def build_parts(plan: RunConfig, placement, world, report) -> TrainingParts:
    """Everything a run needs, built in data-flow order from its plan (:func:`tlf.plan.plan_run`)."""
    from ..data.loaders import build_loaders
    from ..models import build_model
    from ..policies import build_policy

    resolution = Resolution.begin(plan)  # the image size and preprocessing from the backbone's spec
    config = resolution.config
    policy = build_policy(config.policy, config.train_bn)
    with report.phase(f"dataset {config.dataset}: finding and checking its images"):
        splits = load_splits(config)
    resolution = resolution.with_task(splits, policy.defaults)  # --task, or the data's (label sets: multi-label)
    config = resolution.config
    with report.phase(f"model: building {config.backbone}"):
        model = build_model(config.backbone, splits.num_classes, pretrained=policy.pretrained and config.pretrained,
                            weights=Path(config.weights) if config.weights else None, head=config.head,
                            dropout=config.dropout, image_size=config.image_size, pooling=config.pooling)
    resolution = resolution.with_backbone(model.backbone.meta)  # checked; a backbone without spec facts: its meta's
    policy.apply(model)
    model.to(placement.device)
    if config.channels_last:
        model.to(memory_format=torch.channels_last)
    with report.phase("memory: checking that a training step of --batch-size images fits"):
        fitted = fit_micro_batch(resolution.config, model, placement.device)
        resolution = resolution.with_micro_batch(ddp.broadcast_object(fitted, world))  # rank 0's: equal steps on every rank
    config, preprocessing = resolution.config, resolution.preprocessing()
    pipeline = pipeline_for(config, preprocessing, splits.num_classes)
    with report.phase("loaders: preparing them (decoding every image once when images are cached)"):
        train_loader, val_loader = build_loaders(splits, pipeline, batch_size=config.batch_size,
                                                 workers=config.workers, seed=config.seed, cache=config.cache,
                                                 distributed=world.distributed,
                                                 pin_memory=placement.pin_memory,
                                                 balanced=config.sampler == "balanced")
    resolution = resolution.with_data(policy.defaults, -(-len(train_loader) // config.accumulate))
    if resolution.chosen:
        report.info(describe(list(resolution.chosen), len(splits.train)))
    return TrainingParts(resolution, preprocessing, splits, model, policy, pipeline, train_loader, val_loader)
