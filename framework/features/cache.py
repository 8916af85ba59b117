"""Frozen work done once: the frozen prefix of the backbone runs over the training set a
few times (one pass per augmented view), its outputs are kept on the device (or, when they
do not fit in memory, in a memory-mapped file on disk: :mod:`tlf.features.spill`), and every
epoch trains only the rest of the network on them.

Frozen stages are in eval mode during training too, so a cached feature is exactly what
the live path would compute for the same input crop.

The pass runs on a *frozen engine* (:func:`choose_engine`): torch, or on the CPU the prefix
exported to onnxruntime (:mod:`tlf.features.onnx_prefix`), which computes the same fp32
features faster there: 1.2-1.5x torch's pass on an AVX2 CPU, 2.5x on one with AMX
(docs/performance.md).

The trainer asks :func:`plan_feature_cache` whether its run caches and over how many views,
and :func:`cache_features` for the caches and the trainable remainder (:class:`CachedFeatures`).
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Iterable, Iterator, Sequence

import torch
from torch import nn
from torch.utils.data import DataLoader

from ..data.loaders import targets
from ..engine.frozen_cost import announcement
from ..engine.micro_batch import available_bytes
from ..errors import TlfError
from ..models.heads import TokenPool
from .feature_store import stored_pass

if TYPE_CHECKING:
    from ..augment import Pipeline
    from ..config import RunConfig
    from ..policies import FreezePolicy
    from ..engine.parts import TrainingParts
    from ..engine.placement import Placement
    from ..engine.progress import Reporter


def frozen_prefix(model: nn.Module) -> int:
    """How many leading backbone stages are frozen (0 = none, all = whole backbone)."""
    count = 0
    for name in model.backbone.stage_names:
        if name not in model.frozen_stages:
            break
        count += 1
    return count


class Remainder(nn.Module):
    """The trainable part of a classifier: the stages after the frozen prefix, then the head."""

    def __init__(self, model: nn.Module, prefix: int) -> None:
        super().__init__()
        self.stages = nn.Sequential(*list(model.backbone.stages.children())[prefix:])
        self.head = model.head

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.head(self.stages(features))


def memory_budget(device: torch.device) -> int:
    """Bytes the cache may take: 40% of free GPU memory, or 30% of available RAM (reclaimable
    page cache counted as available); 2 GiB where neither can be asked."""
    available = available_bytes(device)
    return 2 << 30 if available is None else int(available * (0.4 if device.type == "cuda" else 0.3))


def ordered_passes(loader: DataLoader, views: int) -> list[DataLoader]:
    """One loader per view over ``loader``'s dataset in index order, with the augmentation of
    epoch ``view`` (the datasets of :mod:`tlf.data.loaders` take ``(epoch, index)`` items)."""
    return [DataLoader(loader.dataset, batch_size=loader.batch_size, sampler=[(view, i) for i in range(len(loader.dataset))],
                       num_workers=loader.num_workers, collate_fn=loader.collate_fn, pin_memory=loader.pin_memory,
                       worker_init_fn=loader.worker_init_fn, generator=torch.Generator().manual_seed(view))
            for view in range(views)]


class TorchPrefix:
    """Runs uint8 loader batches through ``prefix`` with torch (autocast to ``amp_dtype`` if set)."""

    name = "torch"

    def __init__(self, prefix: nn.Module, to_input: Callable, amp_dtype: torch.dtype | None,
                 device: torch.device) -> None:
        self.prefix = prefix.eval()
        self.to_input = to_input
        self.amp_dtype = amp_dtype
        self.device = device

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        amp = self.amp_dtype
        with torch.inference_mode(), torch.autocast(self.device.type, dtype=amp or torch.float32,
                                                    enabled=amp is not None):
            return self.prefix(self.to_input(images)).to(amp or torch.float32)


def choose_engine(setting: str, prefix: nn.Module, to_input: Callable, amp_dtype: torch.dtype | None,
                  device: torch.device, sample: torch.Tensor, mean: Sequence[float], std: Sequence[float],
                  label: str, channels_last: bool = False, calibration: torch.Tensor | None = None,
                  what: str = "the frozen prefix") -> tuple[Callable[[torch.Tensor], torch.Tensor], str]:
    """The engine for the frozen pass and a note on the choice.

    ``setting`` is ``--frozen-engine``: ``auto`` takes onnxruntime fp32 on the CPU whatever the
    run's precision (measured 1.2-1.5x torch's fp32 pass on an AVX2 CPU, 2.5x with AMX; bf16 autocast, which ``--precision bf16``
    would use, was slower in every measurement: 30x slower than torch fp32 on a CPU without native
    bf16, 104.7 against onnxruntime's 121.5 img/s on Lite0 with AMX; and its features are not
    fp32's, docs/performance.md) and torch on GPUs; ``onnxruntime`` asks for it (CPU runs only); ``onnxruntime-int8`` asks for the
    prefix quantized to int8 (:mod:`tlf.features.onnx_int8`), calibrated on ``calibration``
    (uint8 training images; default ``sample``). A prefix that does not export, or whose export
    disagrees with torch on ``sample`` (a uint8 batch), falls back to torch with the reason in the
    note; an int8 file that cannot be made or misses its gate falls back to onnxruntime fp32.
    ``channels_last``: onnxruntime's features in that memory format, as torch's are (the trainable
    rest then runs as fast on them). ``what`` names ``prefix`` in the notes."""
    torch_engine = TorchPrefix(prefix, to_input, amp_dtype, device)
    if setting == "torch":
        return torch_engine, "torch, by --frozen-engine torch"
    if device.type != "cpu":
        if setting != "auto":
            raise TlfError(f"--frozen-engine {setting} runs the frozen pass on the CPU, but this run is on {device.type}",
                           hint="use --frozen-engine auto or torch on a GPU, or --device cpu")
        return torch_engine, f"torch, on {device.type}"
    from .onnx_prefix import onnx_prefix
    with torch.inference_mode():
        reference = prefix.eval()(to_input(sample)).float()
    threads = torch.get_num_threads()
    engine, note = onnx_prefix(prefix, sample, reference, mean, std, label, threads, channels_last, what)
    if engine is None:
        return torch_engine, f"torch: {note}"
    if setting != "onnxruntime-int8":
        return engine, f"onnxruntime ({note})"
    from .onnx_int8 import int8_prefix
    int8, int8_note = int8_prefix(engine, sample if calibration is None else calibration, sample, reference,
                                  threads, channels_last)
    if int8 is None:
        return engine, f"onnxruntime fp32: {int8_note} ({note})"
    return int8, f"onnxruntime-int8 ({int8_note}; fp32 prefix: {note})"


class FeatureCache:
    """Outputs of the frozen prefix, one tensor per view, rows in dataset-index order: on the
    device, or (``on_disk``) in a memory-mapped file on disk (:mod:`tlf.features.spill`), whose
    batches are copied to the labels' device."""

    def __init__(self, features: list[torch.Tensor], labels: torch.Tensor, on_disk: bool = False) -> None:
        self.features = features
        self.labels = labels
        self.on_disk = on_disk

    @property
    def views(self) -> int:
        return len(self.features)

    @property
    def nbytes(self) -> int:
        return sum(f.numel() * f.element_size() for f in self.features)

    def __len__(self) -> int:
        return len(self.labels)

    @classmethod
    def build(cls, engine: Callable[[torch.Tensor], torch.Tensor], passes: list[Iterable], size: int,
              store: torch.dtype, device: torch.device, budget: int,
              advance: Callable[[int], None] | None = None, spill: Spill | None = None) -> FeatureCache | None:
        """Run the frozen ``engine`` (uint8 batch -> features) over each pass (``size`` images in
        index order), keeping ``store``-typed features on ``device``; when they would exceed
        ``budget`` bytes, in the tensor ``spill(shape, dtype)`` gives (a disk-backed one), None when
        there is no ``spill`` or it gives None. ``advance(images)`` is called after every batch (progress)."""
        storage: list[torch.Tensor] | None = None
        on_disk = False
        labels: list[torch.Tensor] = []
        with torch.inference_mode():
            for view, batches in enumerate(passes):
                row, labels = 0, []
                for images, y in batches:
                    out = engine(images).to(device, store)
                    if storage is None:
                        storage, on_disk = _storage((size, *out.shape[1:]), len(passes), store, device, budget, spill)
                        if storage is None:
                            return None
                    storage[view][row:row + len(out)] = out
                    row += len(out)
                    labels.append(y.to(device, non_blocking=True))
                    if advance is not None:
                        advance(len(y))
        return cls(storage or [], torch.cat(labels) if labels else torch.empty(0, dtype=torch.long), on_disk)

    def batches(self, epoch: int, batch_size: int, order: torch.Tensor | None = None,
                drop_last: bool = True) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Batches of the view for ``epoch`` (views cycle over epochs), in ``order`` (dataset
        indices; default: index order)."""
        feats = self.features[epoch % self.views]
        order = (torch.arange(len(feats)) if order is None else order).to(feats.device)
        stop = len(order) - (len(order) % batch_size if drop_last and len(order) >= batch_size else 0)
        for start in range(0, stop, batch_size):
            idx = order[start:start + batch_size]
            yield feats[idx].to(self.labels.device, non_blocking=True), self.labels[idx.to(self.labels.device)]

    def steps_per_epoch(self, batch_size: int, drop_last: bool = True) -> int:
        n = len(self)
        return n // batch_size if drop_last and n >= batch_size else -(-n // batch_size)


Spill = Callable[[tuple, torch.dtype], "torch.Tensor | None"]  # (shape, dtype) -> a disk-backed tensor, or None


def _storage(shape: tuple[int, ...], views: int, store: torch.dtype, device: torch.device, budget: int,
             spill: Spill | None) -> tuple[list[torch.Tensor] | None, bool]:
    """One ``shape`` tensor per view: on ``device`` within ``budget`` bytes, else from ``spill``
    (None when it gives none); and whether they are ``spill``'s."""
    if math.prod(shape) * views * torch.empty((), dtype=store).element_size() <= budget:
        return [torch.empty(shape, dtype=store, device=device) for _ in range(views)], False
    on_disk = spill((views, *shape), store) if spill is not None else None
    return (None, False) if on_disk is None else (list(on_disk.unbind(0)), True)


@dataclass(frozen=True)
class CachePlan:
    """How a run caches its frozen features: the frozen stages run once, over ``views`` augmented
    views of the training set (views cycle over epochs)."""

    prefix: int  # leading frozen backbone stages
    views: int


@dataclass
class CachedFeatures:
    """A run's cached frozen features and the trainable rest of the network that consumes them."""

    train: FeatureCache
    val: FeatureCache | None  # None when the validation features fit neither in memory nor on disk: validation runs live
    remainder: nn.Module  # compiled when the run compiles
    ema_remainder: nn.Module | None  # the same over the EMA weights
    views: int
    engine: str  # what ran the frozen pass

    @property
    def nbytes(self) -> int:
        return self.train.nbytes + (self.val.nbytes if self.val is not None else 0)


def plan_feature_cache(setting: str, model: nn.Module, policy: FreezePolicy, pipeline: Pipeline, distributed: bool,
                       epochs_left: int, resumed_views: int | None = None) -> CachePlan | None:
    """Whether a run caches the frozen prefix's features, and over how many views: ``setting`` is
    ``--feature-cache`` (``auto``, ``off`` or a number of views); None when the cache is off or
    would change training; a number of views that cannot be honoured is a :class:`TlfError`. A
    resumed run keeps the ``resumed_views`` it started with."""
    prefix = frozen_prefix(model)
    why_not = _why_not_cached(setting, prefix, pipeline, distributed, policy)
    if why_not:
        if setting.isdigit():
            raise TlfError(f"--feature-cache {setting} cannot be used: {why_not}", hint="use --feature-cache auto or off")
        return None
    if resumed_views is not None:
        return CachePlan(prefix, resumed_views)
    views = int(setting) if setting.isdigit() else 1 if pipeline.deterministic_train else min(4, epochs_left)
    return CachePlan(prefix, max(1, min(views, epochs_left)))


def _why_not_cached(setting: str, prefix: int, pipeline: Pipeline, distributed: bool, policy: FreezePolicy) -> str | None:
    if setting == "off":
        return "off by --feature-cache off"
    if prefix == 0:
        return "no frozen stages"
    if pipeline.batch is not None:
        return "batch-level augmentation (mixup/cutmix) needs the images"
    if distributed:
        return "not used with torch.distributed"
    if policy.changes_during_training:
        return f"policy {policy.name} changes the frozen set during training"
    return None


def cache_features(plan: CachePlan, parts: TrainingParts, config: RunConfig, placement: Placement,
                   ema_model: nn.Module | None, to_input: Callable, report: Reporter) -> CachedFeatures | None:
    """Run ``plan``'s frozen prefix of ``parts.model`` once over the training views and the
    validation set, on the frozen engine ``config.frozen_engine`` chooses (:func:`choose_engine`);
    None (and a warning) when the training features fit neither in :func:`memory_budget` nor on disk."""
    start = time.perf_counter()
    prefix = _prefix_module(parts.model, plan.prefix)
    store, device = placement.amp_dtype or torch.float32, placement.device
    train_loader, val_loader = parts.train_loader, parts.val_loader
    stored = stored_pass(prefix, _pooled(parts.model, prefix), plan.views, parts.pipeline, train_loader.dataset.images,
                         val_loader.dataset.images, config.frozen_engine, device, store)
    found = stored.load() if stored is not None else None
    if found is not None:
        train, val = (FeatureCache([torch.from_numpy(f).to(device, store)], targets(loader.dataset.images.labels).to(device))
                      for f, loader in zip(found, (train_loader, val_loader)))
        engine_name = "stored"
        report.info("frozen engine: none, the features were stored by an earlier run or audit of these images")
    else:
        if device.type == "cpu":  # a long pass is announced before it starts (the stored features need none)
            images = plan.views * len(train_loader.dataset) + len(val_loader.dataset)
            if (line := announcement(parts.model, plan.prefix, parts.preprocessing.image_size, images)) is not None:
                report.info(line)
        built = _run_frozen_pass(plan, parts, config, placement, to_input, report, prefix)
        if built is None:
            return None
        train, val, engine_name = built
        if stored is not None and val is not None:
            stored.save(train.features[0], val.features[0])
    remainder = Remainder(parts.model, plan.prefix)
    cached = CachedFeatures(train, val, torch.compile(remainder) if config.compile else remainder,
                            Remainder(ema_model, plan.prefix) if ema_model is not None else None, plan.views, engine_name)
    report.info(f"feature cache: {plan.prefix} frozen stage(s) run once over {plan.views} view(s) of the training set "
                f"and the validation set ({cached.nbytes / 2**20:.0f} MiB, {time.perf_counter() - start:.1f}s)")
    return cached


def _run_frozen_pass(plan: CachePlan, parts: TrainingParts, config: RunConfig, placement: Placement,
                     to_input: Callable, report: Reporter,
                     prefix: nn.Module) -> tuple[FeatureCache, FeatureCache | None, str] | None:
    """The training and validation caches computed by ``prefix`` on the frozen engine, and that
    engine's name; None (and a warning) when the training features fit neither in memory nor on disk."""
    sample, calibration = _engine_samples(parts.train_loader, config.frozen_engine)
    prep = parts.preprocessing
    with report.phase("frozen pass: preparing what runs the frozen stages (an ONNX export, once per weights)"):
        engine, note = choose_engine(config.frozen_engine, prefix, to_input, placement.amp_dtype, placement.device,
                                     sample, prep.mean, prep.std, f"{config.backbone}-{plan.prefix}",
                                     config.channels_last, calibration)
    report.info(f"frozen engine: {note}")
    store, device = placement.amp_dtype or torch.float32, placement.device
    train_loader, val_loader = parts.train_loader, parts.val_loader
    passes = ordered_passes(train_loader, plan.views)
    with report.epoch("frozen pass (the frozen stages' features, computed once)",
                      sum(map(len, passes)) + len(val_loader)) as advance:
        spill = _spill(report)
        train = FeatureCache.build(engine, passes, len(train_loader.dataset), store, device, memory_budget(device), advance,
                                   spill)
        if train is None:
            return None
        val = FeatureCache.build(engine, [val_loader], len(val_loader.dataset), store, device, memory_budget(device), advance,
                                 spill)
    return train, val, engine.name


def _spill(report: Reporter) -> Spill:
    """The :data:`Spill` of a run: a memory-mapped file on disk (:func:`tlf.features.spill.disk_tensor`),
    said in a note; when the disk cannot hold it either, None and a warning naming the space needed."""
    from .spill import NoRoom, disk_tensor, spill_folder

    def spill(shape: tuple, dtype: torch.dtype) -> torch.Tensor | None:
        try:
            tensor = disk_tensor(shape, dtype)
        except NoRoom as room:
            free = "unknown" if room.free is None else f"{room.free / 2**20:,.0f} MiB"
            report.warn(f"the frozen features fit neither in memory nor on disk: they need {room.needed / 2**20:,.0f} MiB "
                        f"free in {room.folder} ({free} free; {room.why}). Every epoch runs the frozen stages again, "
                        f"many times slower: free disk space there, or set TLF_HOME to a larger disk")
            return None
        report.info(f"feature cache: {tensor.nbytes / 2**20:,.0f} MiB do not fit in memory; kept in a memory-mapped "
                    f"file on disk instead (under {spill_folder()}, removed when the run ends)")
        return tensor
    return spill


def _pooled(model: nn.Module, prefix: nn.Sequential) -> bool:
    """Whether ``prefix`` is the whole backbone and the head's global pool (one vector per image)."""
    return len(prefix) == len(model.backbone.stage_names) + 1


def _prefix_module(model: nn.Module, prefix: int) -> nn.Sequential:
    """The first ``prefix`` stages; with the whole backbone frozen and a global-average-pool (or
    token-pooling) head, the pool too (pooled features are cached, and the head's pool is the identity on 1x1 maps)."""
    modules = list(model.backbone.stages.children())[:prefix]
    pool = getattr(model.head, "pool", None)
    if prefix == len(model.backbone.stage_names) and (isinstance(pool, TokenPool) or isinstance(
            pool, nn.AdaptiveAvgPool2d) and pool.output_size in (1, (1, 1))):
        modules.append(pool)
    return nn.Sequential(*modules)


def _engine_samples(loader: DataLoader, frozen_engine: str) -> tuple[torch.Tensor, torch.Tensor | None]:
    """A uint8 batch of up to 8 training images (the engines' parity check), and for
    ``onnxruntime-int8`` its calibration images, spread over the training set."""
    dataset = loader.dataset
    sample = loader.collate_fn([dataset[(0, i)] for i in range(min(8, len(dataset)))])[0]
    if frozen_engine != "onnxruntime-int8":
        return sample, None
    from .onnx_int8 import CALIBRATION_IMAGES
    n = len(dataset)
    picks = sorted({i * n // CALIBRATION_IMAGES for i in range(min(n, CALIBRATION_IMAGES))})
    return sample, loader.collate_fn([dataset[(0, i)] for i in picks])[0]
