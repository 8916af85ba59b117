"""Assembling a run from its config: spec -> dataset -> pipeline -> loaders -> model -> policy."""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..config import RunConfig
from ..errors import TlfError
from ..data import DatasetRequest, Splits
from ..paths import cache_dir
from ..registry import get_registry


@dataclass
class RunParts:
    config: RunConfig  # with every default resolved (epochs, lr, image size, workers)
    splits: Splits
    model: Any  # tlf.models.Classifier, on the device
    policy: Any  # tlf.policies.FreezePolicy, applied
    pipeline: Any  # tlf.augment.Pipeline
    train_loader: Any
    val_loader: Any


def default_workers(device_type: str) -> int:
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return min(cpus, 16) if device_type == "cuda" else max(0, min(cpus - 1, 4))


def load_splits(config: RunConfig) -> Splits:
    request = DatasetRequest(cache_dir=cache_dir("datasets"), data_dir=Path(config.data_dir) if config.data_dir else None,
                             download=config.download, val_split=config.val_split, seed=config.seed, strict=config.strict)
    return get_registry().create("datasets", config.dataset, request)


def pipeline_for(config: RunConfig, meta: Any, num_classes: int, augment: str | None = None):
    from ..augment import AugmentRequest, build_pipeline
    request = AugmentRequest(size=config.image_size or meta.input_size, mean=meta.mean, std=meta.std,
                             interpolation=meta.interpolation, crop_pct=meta.crop_pct, num_classes=num_classes,
                             seed=config.seed)
    return build_pipeline(augment if augment is not None else config.augment, request)


def run_data(run: Any, dataset: str | None = None, data_dir: str | None = None) -> tuple[RunConfig, Splits, Any]:
    """A finished run's config, its dataset (or ``dataset``, which must have the same classes)
    and its evaluation pipeline."""
    config = RunConfig.from_dict(run.config)
    config = dataclasses.replace(config, dataset=dataset or config.dataset,
                                 data_dir=data_dir if dataset or data_dir else config.data_dir)
    splits = load_splits(config)
    if splits.classes != run.classes:
        raise TlfError(f"the classes of {config.dataset} ({', '.join(splits.classes)}) differ from the run's "
                       f"({', '.join(run.classes)})",
                       hint="use the dataset the run was trained on (--data-dir), or one with the same class folders")
    return config, splits, pipeline_for(config, run.meta, len(run.classes), augment="none")


def build_parts(config: RunConfig, placement, world, report) -> RunParts:
    """Everything a run needs, built in data-flow order; defaults resolved into the config."""
    from ..data.loaders import build_loaders
    from ..models import build_model

    registry = get_registry()
    policy = registry.create("policies", config.policy)
    splits = load_splits(config)
    model = build_model(config.backbone, splits.num_classes, pretrained=policy.pretrained and config.pretrained,
                        weights=Path(config.weights) if config.weights else None, head=config.head,
                        dropout=config.dropout, input_size=config.image_size)
    meta = model.backbone.meta
    config = dataclasses.replace(
        config,
        epochs=config.epochs or policy.defaults["epochs"],
        augment=config.augment or policy.defaults["augment"],
        lr=config.lr or policy.defaults["lr"],
        image_size=config.image_size or meta.input_size,
        workers=default_workers(placement.device.type) if config.workers is None else config.workers,
    ).validate()
    policy.train_bn = config.train_bn
    policy.apply(model)
    model.to(placement.device)
    if config.channels_last:
        model.to(memory_format=torch.channels_last)
    pipeline = pipeline_for(config, meta, splits.num_classes)
    train_loader, val_loader = build_loaders(splits, pipeline, batch_size=config.batch_size, workers=config.workers,
                                             seed=config.seed, cache=config.cache, distributed=world.distributed,
                                             pin_memory=placement.device.type == "cuda",
                                             balanced=config.sampler == "balanced")
    for problem in splits.problems[:5]:
        report.info(f"[yellow]skipped[/yellow] {problem.path}: {problem.reason}")
    if len(splits.problems) > 5:
        report.info(f"[yellow]skipped[/yellow] {len(splits.problems) - 5} more unreadable file(s); 'tlf data show' lists them")
    return RunParts(config, splits, model, policy, pipeline, train_loader, val_loader)
