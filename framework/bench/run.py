"""``tlf bench``'s measurements for each backbone, put together with the machine's facts."""
from __future__ import annotations

import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from ..config import RunConfig
from ..data import Splits
from ..data.model_input import to_model_input
from ..data.run_data import load_splits
from ..engine.placement import Placement, capabilities, place
from ..errors import TlfError
from ..models import build_model
from ..plan import default_workers
from ..preprocessing import DEFAULT_IMAGE_SIZE, Preprocessing
from ..registry import get_registry
from ..setting_checks import RANGES, check_value
from .ceiling import ceiling_probes, random_batch, synchronizer, train_step
from .images import write_images
from .machine import machine_facts
from .naive import naive_loader
from .pipeline import data_config, data_probes, tlf_loaders
from .timing import MIN_SECONDS, Probe, epoch_round, measure
from .verdict import bottleneck


@dataclass(frozen=True)
class BenchSettings:
    backbones: tuple[str, ...] = ("efficientnet_lite0",)
    device: str = "auto"
    image_size: int | None = None  # the backbone's default
    batch_size: int = 32
    seconds: float = 60.0  # the whole budget, shared by the backbones
    data: str | None = None  # a class-per-folder tree; None: generated JPEGs
    workers: int | None = None  # loader workers; None: as tlf train chooses
    batches: int = 4  # batches per epoch of the generated images


def check(settings: BenchSettings) -> None:
    """One-line errors for settings that cannot be measured."""
    if not settings.backbones:
        raise TlfError("no backbone to measure", hint="give --backbone NAME")
    if settings.seconds <= 0:
        raise TlfError(f"--seconds must be positive, got {settings.seconds:g}", hint="e.g. --seconds 60")
    if settings.seconds < MIN_SECONDS * len(settings.backbones):
        raise TlfError(f"--seconds {settings.seconds:g} is too short to measure anything: each backbone needs "
                       f"{MIN_SECONDS:g}s at least", hint="use --seconds 10 or more per backbone for figures worth comparing")
    for name in ("batch_size", "image_size", "workers"):  # the ranges tlf train checks
        check_value(name, getattr(settings, name), int | None, RANGES[name])
    for name in settings.backbones:
        get_registry().resolve("backbones", name)  # unknown: an error naming close matches


def bench(settings: BenchSettings) -> dict:
    """Measure every backbone of ``settings`` on its device: the JSON ``tlf bench --json`` prints."""
    check(settings)
    placement = place(settings.device)
    workers = default_workers(placement.device.type) if settings.workers is None else settings.workers
    with tempfile.TemporaryDirectory(prefix="tlf-bench-") as scratch:
        data = settings.data or str(_generated(Path(scratch), settings))
        config = data_config(data, settings.batch_size)
        splits = load_splits(config)  # scanned once, measured with every backbone
        results = [_bench_backbone(name, data, config, splits, placement, workers, settings)
                   for name in settings.backbones]
    return {"machine": machine_facts(placement.device),
            "settings": {**asdict(settings), "backbones": list(settings.backbones), "workers": workers,
                         "data": settings.data or "generated"},
            "results": results}


def _generated(root: Path, settings: BenchSettings) -> Path:
    """Enough JPEGs for ``settings.batches`` training batches after the validation split (a fifth)."""
    count = -(-settings.batches * settings.batch_size * 5 // 4) + 4
    return write_images(root, count, settings.image_size or DEFAULT_IMAGE_SIZE)


def _bench_backbone(name: str, data: str, config: RunConfig, splits: Splits, placement: Placement, workers: int,
                    settings: BenchSettings) -> dict:
    """One backbone's measurements, ratios and verdict."""
    model = build_model(name, splits.num_classes, pretrained=False, image_size=settings.image_size)
    prep = Preprocessing.from_meta(model.backbone.meta, settings.image_size or model.backbone.meta.image_size)
    device = placement.device
    model.to(device, memory_format=torch.channels_last)
    loaders = tlf_loaders(config, splits, prep, placement, workers)
    naive = naive_loader(Path(data), prep, settings.batch_size, workers)
    batch = random_batch(settings.batch_size, prep.image_size, splits.num_classes, device)
    precisions = capabilities(device.type).precisions
    probes = [*ceiling_probes(model, device, precisions, batch, name), *data_probes(loaders, prep, placement, name),
              *_loop_probes(model, placement, prep, loaders["cached"], naive, name)]
    rates = measure(probes, settings.seconds / len(settings.backbones))
    return _result(name, prep.image_size, placement.precision, loaders["auto_caches"], rates)


def _loop_probes(model, placement: Placement, prep: Preprocessing, loader, naive, label: str) -> list[Probe]:
    """tlf's loop (its loaders, the copy, the step at the device's automatic precision) and the
    naive loop (torchvision's loader, float32 batches, a float32 step), and the naive data alone."""
    device, sync = placement.device, synchronizer(placement.device)
    step, naive_step = train_step(model, device, placement.precision), train_step(model, device, "fp32")

    def tlf_batch(x: torch.Tensor, y: torch.Tensor) -> None:
        step(to_model_input(x, prep.mean, prep.std, device), y.to(device, non_blocking=True))

    def naive_batch(x: torch.Tensor, y: torch.Tensor) -> None:
        naive_step(x.to(device), y.to(device))
    return [Probe(f"{label}/tlf loop", epoch_round(loader, tlf_batch), sync),
            Probe(f"{label}/naive data", epoch_round(naive)),
            Probe(f"{label}/naive loop", epoch_round(naive, naive_batch), sync)]


def _result(name: str, image_size: int, precision: str, cached: bool, rates: dict[str, dict]) -> dict:
    """Measurements keyed without the backbone's prefix, the ratios and the verdict."""
    measured = {key.split("/", 1)[1]: value for key, value in rates.items()}
    median = {key: value["median"] for key, value in measured.items()}
    stages = {"model": median[f"model train/{precision}"], "data pipeline": median["data pipeline"],
              "decode": median["decode"], "host-to-device copy": median["host-to-device copy"]}
    stage, verdict = bottleneck(stages, cached)
    ratios = {"tlf loop / model ceiling": median["tlf loop"] / stages["model"],
              "tlf loop / naive loop": median["tlf loop"] / median["naive loop"],
              "tlf data / naive data": median["data pipeline"] / median["naive data"]}
    return {"backbone": name, "image_size": image_size, "precision": precision, "decode_cache": cached,
            "measurements": measured, "ratios": ratios, "bottleneck": stage, "verdict": verdict}
