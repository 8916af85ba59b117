"""tlf's own data pipeline alone: its loaders (decode cache, augmentation, collation) and the
host-to-device copy with normalisation, as ``tlf train`` runs them; and tlf's loop, the
pipeline feeding the model's training step."""
from __future__ import annotations

from typing import Callable
import torch

from ..config import RunConfig
from ..data.loaders import build_loaders, choose_cache
from ..data.model_input import to_model_input
from ..data import Splits
from ..data.run_data import pipeline_for
from ..engine.placement import Placement
from ..preprocessing import Preprocessing
from .ceiling import synchronizer
from .timing import Probe, epoch_round

AUGMENT = "basic"  # the augmentation of init and partial training


def data_config(data: str, batch_size: int, seed: int = 0) -> RunConfig:
    """The plan of an ``init``-style run on the class-per-folder tree ``data``: what the loaders read."""
    return RunConfig(dataset=f"folder:{data}", augment=AUGMENT, batch_size=batch_size, seed=seed, download=False)


def tlf_loaders(config: RunConfig, splits: Splits, preprocessing: Preprocessing, placement: Placement,
                workers: int) -> dict:
    """tlf's train loaders of ``config``: with the decode cache (in RAM) and without it, and
    whether ``tlf train``'s automatic choice would cache these images."""
    pipeline = pipeline_for(config, preprocessing, splits.num_classes)
    loaders = {cache: build_loaders(splits, pipeline, batch_size=config.batch_size, workers=workers,
                                    seed=config.seed, cache=cache, pin_memory=placement.pin_memory)[0]
               for cache in ("ram", "off")}
    return {"cached": loaders["ram"], "uncached": loaders["off"],
            "auto_caches": choose_cache(splits, pipeline, "auto")[0] != "off"}


def copy_round(batch: torch.Tensor, preprocessing: Preprocessing, placement: Placement,
               repeats: int = 4) -> Callable[[], int]:
    """A round: ``repeats`` copies of one loader batch to the device, normalised there."""
    p = preprocessing

    def run() -> int:
        for _ in range(repeats):
            to_model_input(batch, p.mean, p.std, placement.device)
        return repeats * len(batch)
    return run


def data_probes(loaders: dict, preprocessing: Preprocessing, placement: Placement, label: str) -> list[Probe]:
    """The pipeline alone: cached, uncached (decoding every image) and the host-to-device copy."""
    batch = next(iter(loaders["cached"]))[0]
    if placement.pin_memory:
        batch = batch.pin_memory()
    return [Probe(f"{label}/data pipeline", epoch_round(loaders["cached"])),
            Probe(f"{label}/decode", epoch_round(loaders["uncached"])),
            Probe(f"{label}/host-to-device copy", copy_round(batch, preprocessing, placement),
                  synchronizer(placement.device))]
