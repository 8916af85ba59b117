"""The data of a run's plan: its dataset's splits and its augmentation pipeline around the
eval view of its preprocessing; for a finished run, the same with its classes checked."""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from ..augment import AugmentRequest, Pipeline, build_pipeline
from ..config import RunConfig
from ..errors import TlfError
from ..paths import cache_dir
from ..preprocessing import Preprocessing
from . import DatasetRequest, Splits, load_dataset
from .edits import apply_edits


def load_splits(config: RunConfig) -> Splits:
    """The splits of ``config``'s dataset, read (or downloaded) as its settings say."""
    request = DatasetRequest(cache_dir=cache_dir("datasets"), data_dir=Path(config.data_dir) if config.data_dir else None,
                             download=config.download, val_split=config.val_split, seed=config.seed, strict=config.strict)
    return apply_edits(load_dataset(config.dataset, request), config.exclude, config.relabel)


def pipeline_for(config: RunConfig, preprocessing: Preprocessing, num_classes: int,
                 augment: str | None = None) -> Pipeline:
    """The train/eval pipeline of ``config``'s augmentations around ``preprocessing``'s eval view."""
    p = preprocessing
    request = AugmentRequest(image_size=p.image_size, mean=p.mean, std=p.std, interpolation=p.interpolation, resize=p.resize,
                             num_classes=num_classes, seed=config.seed)
    return build_pipeline(augment if augment is not None else config.augment, request)


def run_data(run: Any, dataset: str | None = None, data_dir: str | None = None) -> tuple[RunConfig, Splits, Pipeline]:
    """A finished run's config, its dataset (or ``dataset``, which must have the same classes)
    and its evaluation pipeline."""
    plan = run.config
    config = dataclasses.replace(plan, dataset=dataset or plan.dataset,
                                 data_dir=data_dir if dataset or data_dir else plan.data_dir,
                                 exclude=None if dataset else plan.exclude, relabel=None if dataset else plan.relabel)
    splits = load_splits(config)
    if splits.classes != run.classes:
        raise TlfError(f"the classes of {config.dataset} ({', '.join(splits.classes)}) differ from the run's "
                       f"({', '.join(run.classes)})",
                       hint="use the dataset the run was trained on (--data-dir), or one with the same class folders")
    return config, splits, pipeline_for(config, run.preprocessing, len(run.classes), augment="none")
