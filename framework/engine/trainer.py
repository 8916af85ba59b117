"""The training loop: fit -> epoch -> batch -> step, with an event for callbacks at each point.
It knows the model, the optimizer and the task's loss and metrics; where batches come from is the
:class:`BatchSource`'s business, and checkpoints, resume, EMA, early stopping, the lr finder, the
schedule, reporting, loggers and hooks are callbacks (:mod:`tlf.engine.callback`)."""
from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from ..config import RunConfig
from ..registry import get_registry
from ..task import TaskRequest
from . import distributed as ddp
from .assembly import build_parts
from .batches import BatchSource
from .failures import nonfinite_loss, out_of_memory
from .callback import CallbackRequest, Callbacks, CancelEpoch, CancelFit, StopWhenAsked, build_callbacks
from .imbalance import class_weights
from .metrics import row_entries
from .lr_find import LrFinding, suggested_lr
from .optim import build_optimizer
from .placement import Placement, place
from .progress import Reporter
from .rng import seed_everything
from .summary import run_summary
from .training_run import TrainingRun


class Trainer:
    """Trains one run; ``fit()`` returns the summary."""

    def __init__(self, plan: RunConfig, resume_dir: Path | None = None, quiet: bool = False,
                 open_run_dir: bool = True, should_stop: Callable[[int, dict], bool] | None = None) -> None:
        """``plan``: :func:`tlf.plan.plan_run`'s (its later steps are taken as the run is built); ``open_run_dir``
        False (the lr finder): no run directory; ``should_stop(epoch, row)`` True ends the run after that epoch."""
        self.started = time.perf_counter()
        self.world = ddp.init_world(plan.device)
        self.placement: Placement = place(plan.device, plan.precision,
                                          self.world.local_rank if self.world.distributed else None)
        self.is_main = self.world.is_main  # this process writes the run's files and reports (rank 0)
        self.report = Reporter(quiet=quiet, enabled=self.is_main)
        self.run_dir = None  # the run directory's writer (main process), opened by the checkpoint callback
        request = CallbackRequest(plan, resume_dir, open_run_dir, self.world.is_main)
        self.callbacks = Callbacks([*build_callbacks(request), *([StopWhenAsked(should_stop)] if should_stop else [])])
        try:
            self._set_up(plan)
            self.callbacks("after_create", self)
        except BaseException as exc:
            self.callbacks("after_failure", self, exc)
            self.close()
            raise

    def _set_up(self, plan: RunConfig) -> None:
        seed_everything(plan.seed + self.world.rank)
        self.parts = build_parts(plan, self.placement, self.world, self.report)
        self.config, self.model, self.policy = self.parts.config, self.parts.model, self.parts.policy
        self.defaults_chosen = [c.to_dict() for c in self.parts.resolution.chosen]  # a resume restores them
        self.device = self.placement.device
        self.task = get_registry().create("tasks", self.config.task, TaskRequest(self.parts.splits.classes))
        self.start_epoch, self.epoch, self.step, self.history, self.best = 0, 0, 0, [], -1.0
        self.earlier_seconds, self.resumed_cache_views = 0.0, None  # wall time, cache views before a resume
        self.lr_finding: LrFinding | None = None  # --lr auto's range test (tlf.engine.lr_find.suggested_lr)
        self.base_lr = 1.0 if self.config.lr == "auto" else float(self.config.lr)  # --lr auto: set by _complete_plan
        self.optimizer = self.build_optimizer(self.base_lr)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.placement.uses_scaler)
        weights = class_weights(self.config.class_weights, self.parts.splits.train.labels, self.parts.splits.classes)
        self.class_weights = None if weights is None else [round(float(w), 6) for w in weights]
        self.criterion = self.task.criterion(weights, self.config.label_smoothing, self.device)
        self.weights: dict[str, nn.Module] = {"raw": self.model}  # what is validated (EMA adds "ema")
        self.source = BatchSource(self.parts, self.placement, self.world, self.report)
        self.run, self.summary = TrainingRun(self.config, None, self.model, self.parts.splits.classes), None

    def close(self) -> None:
        """Release what the callbacks hold (the run directory's lock; the process ending releases it too)."""
        for callback in self.callbacks:
            callback.close()

    @property
    def cached(self) -> Any:
        """The cached frozen features (:class:`~tlf.features.cache.CachedFeatures`), or None."""
        return self.source.cached

    @property
    def ema(self) -> Any:
        """The run's :class:`~tlf.engine.ema.WeightEma` (the ``ema`` callback's), or None."""
        return getattr(self.callbacks.find("ema"), "ema", None)

    def build_optimizer(self, lr: float) -> torch.optim.Optimizer:
        """The optimizer over the policy's parameter groups at base ``lr``."""
        c = self.config
        groups = self.policy.param_groups(self.model, lr, c.weight_decay, c.head_lr_scale)
        return build_optimizer(groups, c.optimizer, lr, c.weight_decay, c.momentum,
                               fused=self.device.type == "cuda" and c.optimizer == "adamw")

    def prepare(self) -> None:
        """The batch source: the module the loop calls, and the feature cache when it applies."""
        self.source.prepare(self.config.epochs - self.start_epoch, self.resumed_cache_views, self.weights.get("ema"))

    @property
    def steps_per_epoch(self) -> int:
        """Optimizer steps an epoch."""
        return -(-self.source.steps_per_epoch() // self.config.accumulate)

    def fit(self) -> dict:
        """Train to the end; the callbacks hear of a run that fails or is interrupted."""
        try:
            if self.start_epoch >= self.config.epochs:
                self.report.info(f"run already finished all {self.config.epochs} epochs")
            else:
                self._fit()
            self.summary = self.run.summary = run_summary(self) if self.is_main else None
            self.callbacks("after_fit", self)
        except BaseException as exc:
            self.callbacks("after_failure", self, exc)
            raise
        ddp.close_world(self.world)
        return self.summary or {}

    def _fit(self) -> None:
        self.prepare()
        self.step = self.start_epoch * self.steps_per_epoch  # checkpoints are taken at epoch ends
        try:
            self._complete_plan()
            self.callbacks("before_fit", self)
            for self.epoch in range(self.start_epoch, self.plan.epochs):
                self._epoch()
        except CancelFit as stop:
            self.report.info(str(stop))

    def _complete_plan(self) -> None:
        """The plan's last resolution step, ``--lr auto`` (the range test on the prepared batches), then the
        :class:`~tlf.plan.RunPlan` the loop runs: ``plan`` (and ``config``, the settings so far until then)."""
        resolution = self.parts.resolution.with_lr(self.policy.defaults, lambda: suggested_lr(self))
        if resolution is not self.parts.resolution:  # the lr chosen
            self.defaults_chosen.append(resolution.chosen[-1].to_dict())
            self.base_lr, self.optimizer = resolution.config.lr, self.build_optimizer(resolution.config.lr)
        self.config = self.run.config = self.plan = resolution.complete()

    def _epoch(self) -> None:
        if self.policy.on_epoch_start(self.model, self.epoch, self.optimizer):  # gradual unfreezing
            frozen = ", ".join(self.model.frozen_stages) or "none"
            self.report.info(f"epoch {self.epoch + 1}: {self.policy.name} unfroze a stage; frozen now: {frozen}")
            self.source.wrap()
        start = time.perf_counter()
        try:
            train, images = self._train_epoch()
            train_seconds = time.perf_counter() - start
            self.callbacks("before_validate", self)
            self.scores = {name: self.score_validation_set(name) for name in self.weights}
            self.callbacks("after_validate", self)
        except torch.cuda.OutOfMemoryError:
            raise out_of_memory(self) from None
        self.row = {"epoch": self.epoch + 1, **{f"train_{k}": v for k, v in train.items()},
                    **row_entries("val_", self.scores["raw"]), "lr": max(g["lr"] for g in self.optimizer.param_groups),
                    "images_per_second": round(images / max(train_seconds, 1e-9), 1),
                    "epoch_seconds": round(time.perf_counter() - start, 3)}
        for name, scores in self.scores.items():
            self.row.update(row_entries(f"{name}_val_", scores) if name != "raw" else {})
        self._record()
        self.callbacks("after_epoch", self)

    def _record(self) -> None:
        """The row in the history; ``improved``: the task's criterion beat the best (its logits are kept)."""
        self.history.append(self.row)
        value, weights = self.task.best_of(self.row)
        self.improved = value > self.best
        if self.improved:
            self.best = value
            scored = self.scores[weights]
            self.run.best_val_logits = None if self.world.distributed else (scored["logits"], scored["labels"])

    def _train_epoch(self) -> tuple[dict[str, float], float]:
        self.model.train()
        meter, nonfinite = self.task.meter(self.device), torch.zeros(1, device=self.device)
        total, accumulate = self.source.steps_per_epoch(), self.plan.accumulate
        with contextlib.suppress(CancelEpoch):  # a callback skipped the rest of the epoch
            self.callbacks("before_epoch", self)
            for i, (self.x, self.y) in enumerate(self.source.train_batches(self.epoch)):
                self.starts_step, self.ends_step = i % accumulate == 0, (i + 1) % accumulate == 0 or i + 1 == total
                if self.starts_step:  # a new optimizer step over this many micro-batches
                    self.micro = min(accumulate, total - i)
                self._batch()
                meter.add(self.logits, self.y, self.loss.detach())
                nonfinite += ~torch.isfinite(self.loss.detach())
                self.callbacks("after_batch", self)
                if self.ends_step and self.step % 50 == 0 and nonfinite.item() > 0:
                    raise nonfinite_loss(self.epoch)
        if ddp.all_reduce_sum(nonfinite, self.world).item() > 0:
            raise nonfinite_loss(self.epoch)
        metrics, count = meter.result(lambda sums: ddp.all_reduce_sum(sums, self.world))
        return metrics, count / self.world.size

    def _batch(self) -> None:
        """One micro-batch: forward, loss, backward, and the optimizer step when it ends one."""
        self.callbacks("before_batch", self)
        if self.starts_step:
            self.optimizer.zero_grad(set_to_none=True)
        self.logits, self.loss = self._forward_loss(self.source.module, self.x, self.y, self.source.batch_transform)
        self.callbacks("after_loss", self)
        self.scaler.scale(self.loss / self.micro if self.micro > 1 else self.loss).backward()
        self.callbacks("after_backward", self)
        if self.ends_step:
            self.callbacks("before_step", self)
            self._apply_gradients()
            self.step += 1
            self.callbacks("after_step", self)

    def _forward_loss(self, module: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_aug: Callable | None) -> tuple:
        x, target = batch_aug(x, y) if batch_aug is not None else (x, y)
        amp = self.placement.amp_dtype
        with torch.autocast(self.device.type, dtype=amp or torch.float32, enabled=amp is not None):
            logits = module(x)
            return logits, self.criterion(logits.float(), target)

    def _apply_gradients(self) -> None:
        if self.config.grad_clip:  # the lr finder's steps too, before the plan is complete
            self.scaler.unscale_(self.optimizer)
            nn.utils.clip_grad_norm_([p for g in self.optimizer.param_groups for p in g["params"]], self.config.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()

    def training_step(self, micro_batches: list[tuple[torch.Tensor, torch.Tensor]]) -> float:
        """The lr finder's optimizer step over ``micro_batches`` (accumulated as the run does); their mean loss."""
        self.optimizer.zero_grad(set_to_none=True)
        losses: list[float] = []
        for x, y in micro_batches:
            _, loss = self._forward_loss(self.source.module, x, y, self.source.batch_transform)
            self.scaler.scale(loss / len(micro_batches)).backward()
            losses.append(loss.item())
        self._apply_gradients()
        return sum(losses) / len(losses)

    @torch.inference_mode()
    def score_validation_set(self, weights: str = "raw") -> dict:
        """The task's validation metrics of ``weights`` (``raw``, ``ema``), under torch.distributed
        summed over the ranks' shards, so every rank gets the same figures; and this process's logits and labels."""
        logits, labels = self.source.validation_logits(weights, self.weights[weights])
        sums = self.task.validation_sums(logits, labels)
        if self.world.distributed:
            sums = {k: ddp.all_reduce_sum(v.to(self.device), self.world).cpu() for k, v in sums.items()}
        return {**self.task.validation_metrics(sums), "logits": logits, "labels": labels}

    def wall_seconds(self) -> float:
        """Wall time of the run so far, set-up and feature cache included, across resumes."""
        return self.earlier_seconds + time.perf_counter() - self.started
