"""Assembling a run from its plan: policy -> dataset -> model -> freezing -> pipeline -> loaders."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..adaptive_defaults import Choice, adapt, describe
from ..config import RunConfig
from ..errors import TlfError
from ..data import DatasetRequest, Splits
from ..paths import cache_dir
from ..preprocessing import Preprocessing
from ..registry import get_registry


@dataclass
class TrainingParts:
    config: RunConfig  # the plan, its image size fixed from the backbone (tlf.plan.with_backbone), its
    # epochs and head lr multiplier from the data and the policy (tlf.adaptive_defaults.adapt)
    preprocessing: Preprocessing  # from the backbone's meta at the plan's image size
    splits: Splits
    model: Any  # tlf.models.Classifier, on the device
    policy: Any  # tlf.policies.FreezePolicy, applied
    pipeline: Any  # tlf.augment.Pipeline
    train_loader: Any
    val_loader: Any
    defaults_chosen: list[Choice]  # the size-adaptive defaults applied to the plan (tlf.adaptive_defaults)


def load_splits(config: RunConfig) -> Splits:
    request = DatasetRequest(cache_dir=cache_dir("datasets"), data_dir=Path(config.data_dir) if config.data_dir else None,
                             download=config.download, val_split=config.val_split, seed=config.seed, strict=config.strict)
    return get_registry().create("datasets", config.dataset, request)


def pipeline_for(config: RunConfig, preprocessing: Preprocessing, num_classes: int, augment: str | None = None):
    """The train/eval pipeline of ``config``'s augmentations around ``preprocessing``'s eval view."""
    from ..augment import AugmentRequest, build_pipeline
    p = preprocessing
    request = AugmentRequest(image_size=p.image_size, mean=p.mean, std=p.std, interpolation=p.interpolation, resize=p.resize,
                             num_classes=num_classes, seed=config.seed)
    return build_pipeline(augment if augment is not None else config.augment, request)


def run_data(run: Any, dataset: str | None = None, data_dir: str | None = None) -> tuple[RunConfig, Splits, Any]:
    """A finished run's config, its dataset (or ``dataset``, which must have the same classes)
    and its evaluation pipeline."""
    plan = run.config
    config = dataclasses.replace(plan, dataset=dataset or plan.dataset,
                                 data_dir=data_dir if dataset or data_dir else plan.data_dir)
    splits = load_splits(config)
    if splits.classes != run.classes:
        raise TlfError(f"the classes of {config.dataset} ({', '.join(splits.classes)}) differ from the run's "
                       f"({', '.join(run.classes)})",
                       hint="use the dataset the run was trained on (--data-dir), or one with the same class folders")
    return config, splits, pipeline_for(config, run.preprocessing, len(run.classes), augment="none")


def build_parts(plan: RunConfig, placement, world, report) -> TrainingParts:
    """Everything a run needs, built in data-flow order from its plan (:func:`tlf.plan.plan_run`)."""
    from ..data.loaders import build_loaders
    from ..models import build_model
    from ..plan import with_backbone
    from ..policies import build_policy

    policy = build_policy(plan.policy, plan.train_bn)
    with report.phase(f"dataset {plan.dataset}: finding and checking its images"):
        splits = load_splits(plan)
    with report.phase(f"model: building {plan.backbone}"):
        model = build_model(plan.backbone, splits.num_classes, pretrained=policy.pretrained and plan.pretrained,
                            weights=Path(plan.weights) if plan.weights else None, head=plan.head,
                            dropout=plan.dropout, image_size=plan.image_size)
    meta = model.backbone.meta
    config = with_backbone(plan, meta)
    preprocessing = Preprocessing.from_meta(meta, config.image_size)
    policy.apply(model)
    model.to(placement.device)
    if config.channels_last:
        model.to(memory_format=torch.channels_last)
    pipeline = pipeline_for(config, preprocessing, splits.num_classes)
    with report.phase("loaders: preparing them (decoding every image once when images are cached)"):
        train_loader, val_loader = build_loaders(splits, pipeline, batch_size=config.batch_size,
                                                 workers=config.workers, seed=config.seed, cache=config.cache,
                                                 distributed=world.distributed,
                                                 pin_memory=placement.device.type == "cuda",
                                                 balanced=config.sampler == "balanced")
    config, chosen = adapt(config, policy.defaults, -(-len(train_loader) // config.accumulate))
    if chosen:
        report.info(describe(chosen, len(splits.train)))
    return TrainingParts(config, preprocessing, splits, model, policy, pipeline, train_loader, val_loader, chosen)
