"""Assembling a run from its plan: policy -> dataset -> model -> freezing -> micro-batch -> pipeline -> loaders."""
from __future__ import annotations

from pathlib import Path

import torch

from ..adaptive_defaults import adapt, describe
from ..config import RunConfig
from ..data.run_data import load_splits, pipeline_for
from ..preprocessing import Preprocessing
from ..task_choice import choose_task
from . import distributed as ddp
from .micro_batch import fit_micro_batch
from .parts import TrainingParts


def build_parts(plan: RunConfig, placement, world, report) -> TrainingParts:
    """Everything a run needs, built in data-flow order from its plan (:func:`tlf.plan.plan_run`)."""
    from ..data.loaders import build_loaders
    from ..models import build_model
    from ..plan import with_backbone
    from ..policies import build_policy

    policy = build_policy(plan.policy, plan.train_bn)
    with report.phase(f"dataset {plan.dataset}: finding and checking its images"):
        splits = load_splits(plan)
    plan, task_chosen = choose_task(plan, splits)  # --task, or the data's (label sets: multi-label)
    with report.phase(f"model: building {plan.backbone}"):
        model = build_model(plan.backbone, splits.num_classes, pretrained=policy.pretrained and plan.pretrained,
                            weights=Path(plan.weights) if plan.weights else None, head=plan.head,
                            dropout=plan.dropout, image_size=plan.image_size, pooling=plan.pooling)
    meta = model.backbone.meta
    config = with_backbone(plan, meta)
    preprocessing = Preprocessing.from_meta(meta, config.image_size)
    policy.apply(model)
    model.to(placement.device)
    if config.channels_last:
        model.to(memory_format=torch.channels_last)
    with report.phase("memory: checking that a training step of --batch-size images fits"):
        config, fitted = fit_micro_batch(config, model, placement.device)
        config, fitted = ddp.broadcast_object((config, fitted), world)  # rank 0's choice: equal steps on every rank
    pipeline = pipeline_for(config, preprocessing, splits.num_classes)
    with report.phase("loaders: preparing them (decoding every image once when images are cached)"):
        train_loader, val_loader = build_loaders(splits, pipeline, batch_size=config.batch_size,
                                                 workers=config.workers, seed=config.seed, cache=config.cache,
                                                 distributed=world.distributed,
                                                 pin_memory=placement.pin_memory,
                                                 balanced=config.sampler == "balanced")
    config, chosen = adapt(config, policy.defaults, -(-len(train_loader) // config.accumulate))
    chosen = [c for c in (task_chosen, fitted) if c is not None] + chosen
    if chosen:
        report.info(describe(chosen, len(splits.train)))
    return TrainingParts(config, preprocessing, splits, model, policy, pipeline, train_loader, val_loader, chosen)
