"""The training loop: one run, from a resolved config to a finished run directory."""
from __future__ import annotations

import json
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn

from .. import __version__
from ..config import RunConfig
from ..errors import TlfError
from ..pluginmanager import get_plugin_manager
from ..rundir import PREPROCESSING_FILE, RESUME_KEYS, RunDirWriter, load_checkpoint, read_run_config
from ..tracking import STEP_EVERY, LoggerRequest, Loggers, check_loggers
from . import distributed as ddp
from .placement import Placement, place
from .features import CachedFeatures, cache_features, plan_feature_cache
from .eval_engine import ValidationEngine
from .ema import WeightEma
from .imbalance import class_weights
from .optim import build_optimizer, set_lr
from .run_plots import plot_curves
from .progress import Reporter
from .schedules import Schedule
from .assembly import TrainingParts, build_parts


@dataclass
class TrainingRun:
    """What ``tlf.train`` returns and what lifecycle hooks receive."""

    config: RunConfig
    directory: Path | None
    model: nn.Module
    classes: list[str]
    summary: dict | None = None
    # logits and labels of the whole validation split under best.pt's weights, when this run
    # computed them in one process (not after a resume that did not improve, not under DDP):
    # the end-of-run evaluation uses them instead of a second pass over the images
    best_val_logits: tuple[torch.Tensor, torch.Tensor] | None = None


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def rng_state() -> dict:
    state = {"python": random.getstate(), "numpy": torch.from_numpy(np.random.get_state()[1].astype(np.int64)),
             "numpy_pos": int(np.random.get_state()[2]), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    np.random.set_state(("MT19937", state["numpy"].numpy().astype(np.uint32), state["numpy_pos"], 0, 0.0))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def count_params(model: nn.Module) -> tuple[int, int]:
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return total, trainable


class Trainer:
    """Trains one run; ``fit()`` returns the summary."""

    def __init__(self, plan: RunConfig, resume_dir: Path | None = None, quiet: bool = False,
                 open_run_dir: bool = True, should_stop: Callable[[int, dict], bool] | None = None) -> None:
        """``plan``: a run's resolved plan (:func:`tlf.plan.plan_run`); ``open_run_dir`` False
        (the lr finder): no run directory."""
        self.started = time.perf_counter()
        config = plan
        self.world = ddp.init_world(config.device)
        if self.world.is_main:
            check_loggers(config.loggers)
        self.loggers = Loggers({})
        self.should_stop = should_stop  # called after each epoch with (epoch, row): True ends the run there
        self.placement: Placement = place(config.device, config.precision,
                                          self.world.local_rank if self.world.distributed else None)
        self.report = Reporter(quiet=quiet, enabled=self.world.is_main)
        self.run_dir: RunDirWriter | None = self._claim(resume_dir) if resume_dir is not None else None
        try:
            self._set_up(config, resume_dir, open_run_dir)
        except BaseException:
            self.close()
            raise

    def _set_up(self, config: RunConfig, resume_dir: Path | None, open_run_dir: bool) -> None:
        seed_everything(config.seed + self.world.rank)
        self.parts: TrainingParts = build_parts(config, self.placement, self.world, self.report)
        self.config = self.parts.config
        self.model = self.parts.model
        self.policy = self.parts.policy
        self.defaults_chosen = [c.to_dict() for c in self.parts.defaults_chosen]  # a resume restores them
        self.device = self.placement.device
        self.start_epoch = 0
        self.history: list[dict] = []
        self.best_acc = -1.0
        self.step = 0
        self.earlier_seconds = 0.0  # wall time before a resume
        self.forward_model: nn.Module = self.model
        self.base_lr = 1.0 if self.config.lr == "auto" else float(self.config.lr)  # --lr auto: set by the finder
        self.optimizer = self._build_optimizer(self.base_lr)
        self.lr_finding = None
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.placement.uses_scaler)
        weights = class_weights(self.config.class_weights, self.parts.splits.train.labels, self.parts.splits.classes)
        self.class_weights = None if weights is None else [round(float(w), 6) for w in weights]
        self.criterion = nn.CrossEntropyLoss(
            weight=None if weights is None else torch.tensor(weights, dtype=torch.float32, device=self.device),
            label_smoothing=self.config.label_smoothing)
        self.ema = WeightEma(self.model, self.config.ema) if self.config.ema else None
        self.schedule_state: dict | None = None  # a resumed plateau schedule's state
        self.schedule: Schedule | None = None
        self.cached: CachedFeatures | None = None  # the frozen features, when the run caches them
        self.resumed_cache_views: int | None = None  # the views a resumed run's cache started with
        prep = self.parts.preprocessing
        self.validation = ValidationEngine(self.config.frozen_engine, self.placement, prep.mean, prep.std,
                                           self.world.distributed, self.report.info)
        if resume_dir is not None:
            self._restore(resume_dir)
        self.run_dir = self._open_run_dir(resume_dir) if open_run_dir else None
        self.run = TrainingRun(self.config, self.run_dir.path if self.run_dir else None, self.model, self.parts.splits.classes)

    def close(self) -> None:
        """Release the run directory's lock (the process ending releases it too)."""
        if self.run_dir is not None:
            self.run_dir.unlock()

    # ---- set-up -------------------------------------------------------------------------
    def _build_optimizer(self, lr: float) -> torch.optim.Optimizer:
        c = self.config
        groups = self.policy.param_groups(self.model, lr, c.weight_decay, c.head_lr_scale)
        return build_optimizer(groups, c.optimizer, lr, c.weight_decay, c.momentum,
                               fused=self.device.type == "cuda" and c.optimizer == "adamw")

    def _auto_lr(self) -> None:
        """``--lr auto``: the range test's suggestion becomes the run's lr (and its config.yaml's)."""
        import dataclasses

        from .lr_find import find_lr
        from .run_plots import plot_lr_find
        finding = find_lr(self)
        finding.suggestion = ddp.broadcast_object(finding.suggestion, self.world)  # rank 0's, on every rank
        self.lr_finding = finding
        self.base_lr = finding.suggestion
        self.config = self.run.config = dataclasses.replace(self.config, lr=finding.suggestion)
        self.optimizer = self._build_optimizer(finding.suggestion)
        if self.world.is_main:
            self.report.info(f"lr auto: {finding.suggestion:.2e} ({finding.rule}, {len(finding.lrs)} steps)")
            self.run_dir.write_yaml("config.yaml", self.config.to_dict())
            plot_lr_find(finding, self.run_dir.path / "lr_find.png")

    def _claim(self, resume_dir: Path) -> RunDirWriter | None:
        """Lock a run directory to resume (main process) before anything reads or removes its files."""
        if not self.world.is_main:
            return None
        run_dir = RunDirWriter(resume_dir)
        run_dir.lock()
        for path in run_dir.remove_partial_files():
            self.report.info(f"removed {path.name}, left by the interrupted run")
        return run_dir

    def _open_run_dir(self, resume_dir: Path | None) -> RunDirWriter | None:
        if not self.world.is_main:
            ddp.broadcast_object(None, self.world)
            return None
        if resume_dir is not None:
            run_dir = self.run_dir
            self._repair(run_dir)
            if read_run_config(resume_dir).epochs != self.config.epochs:  # resumed to more epochs
                run_dir.write_yaml("config.yaml", self.config.to_dict())
        else:
            import yaml
            c = self.config
            run_dir = RunDirWriter.create(c.out, c.dataset, c.backbone, c.policy, c.name, files={
                "config.yaml": yaml.safe_dump(c.to_dict(), sort_keys=False),
                "classes.json": json.dumps(self.parts.splits.classes, indent=2) + "\n",
                PREPROCESSING_FILE: json.dumps(self.parts.preprocessing.to_dict(), indent=2) + "\n"})
        ddp.broadcast_object(str(run_dir.path), self.world)
        return run_dir

    def _repair(self, run_dir: RunDirWriter) -> None:
        """Bring every file of a resumed run to the state of its last checkpoint, whatever the order
        in which an interrupted run's writes landed: the metrics files are rewritten from the
        checkpoint's history, and ``best.pt`` is restored when the history's best epoch is the last."""
        if not self.history:
            return
        if run_dir.read_metrics() != self.history:
            run_dir.write_metrics(self.history)
            self._plot()
            self.report.info(f"repaired metrics.jsonl/.csv: {len(self.history)} epoch(s), from last.pt")
        best_row = max(self.history, key=lambda r: best_of(r)[0])  # the first best, as the loop keeps it
        best_epoch = best_row["epoch"]
        have = run_dir.checkpoint_epoch("best")
        if have == best_epoch or (have is not None and have > self.start_epoch):
            return  # current, or written by the epoch about to be trained again, which rewrites it
        if best_epoch == self.start_epoch:
            if best_of(best_row)[1] == "ema":  # best.pt holds the EMA weights, restored from last.pt
                state = load_checkpoint(run_dir.path, "last")
                run_dir.save_checkpoint("best", {**state, "model": self.ema.model.state_dict(), "weights": "ema"})
            else:
                run_dir.copy_checkpoint("last", "best")
            self.report.info(f"repaired best.pt: epoch {best_epoch}, from last.pt")
        else:
            self.report.warn(f"best.pt of epoch {best_epoch} is missing and cannot be rebuilt; "
                             f"best.pt will hold the next improvement (last.pt is complete)")

    def _restore(self, resume_dir: Path) -> None:
        if not (Path(resume_dir) / "last.pt").exists():
            self.report.info(f"{resume_dir} has no checkpoint yet (stopped during epoch 1): starting it again")
            return
        state = load_checkpoint(resume_dir, "last", map_location=str(self.device), needs=RESUME_KEYS)
        for epoch in range(state["epoch"] + 1):
            self.policy.on_epoch_start(self.model, epoch, self.optimizer)
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scaler.load_state_dict(state["scaler"])
        if self.ema is not None:
            self.ema.load_state_dict(state["ema"])
        self.schedule_state = state.get("schedule")
        set_rng_state(state["rng"])
        self.start_epoch = state["epoch"] + 1
        self.history = list(state["history"])
        self.best_acc = float(state["best_acc"])
        self.earlier_seconds = float(state["elapsed"])
        self.resumed_cache_views = state.get("feature_cache_views")
        self.defaults_chosen = state.get("defaults_chosen", self.defaults_chosen)

    def _wrap(self) -> None:
        """The module the loop calls: DDP and/or torch.compile around the plain model."""
        module: nn.Module = self.model
        if self.world.distributed:
            module = nn.parallel.DistributedDataParallel(
                module, device_ids=[self.device.index] if self.device.type == "cuda" else None)
        if self.config.compile:
            module = torch.compile(module)
        self.forward_model = module

    def _to_input(self, images: torch.Tensor) -> torch.Tensor:
        from ..data.model_input import to_model_input
        prep = self.parts.preprocessing
        return to_model_input(images, prep.mean, prep.std, self.device, channels_last=self.config.channels_last)

    def _maybe_cache_features(self, epochs_left: int) -> None:
        """The frozen-prefix feature cache, when :func:`plan_feature_cache` allows it and it fits."""
        plan = plan_feature_cache(self.config.feature_cache, self.model, self.policy, self.parts.pipeline,
                                  self.world.distributed, epochs_left, self.resumed_cache_views)
        if plan is not None:
            self.cached = cache_features(plan, self.parts, self.config, self.placement,
                                         self.ema.model if self.ema is not None else None, self._to_input, self.report)

    # ---- the loop -----------------------------------------------------------------------
    def prepare(self) -> None:
        """The module the loop calls, and the feature cache when it applies."""
        self._wrap()
        self._maybe_cache_features(self.config.epochs - self.start_epoch)

    def fit(self) -> dict:
        """Train to the end; the loggers hear of a run that fails or is interrupted."""
        try:
            return self._fit()
        except BaseException as exc:
            self.loggers.finish(None, "killed" if isinstance(exc, KeyboardInterrupt) else "failed")
            raise

    def _fit(self) -> dict:
        epochs = self.config.epochs
        self._announce()
        if self.start_epoch >= epochs:
            self.report.info(f"run already finished all {epochs} epochs")
            return self._finish()
        self.prepare()
        if self.config.lr == "auto":
            self._auto_lr()  # the loggers below are told the lr it chose
        schedule = self._start_schedule()
        self._open_loggers()
        stale = 0  # epochs since the best one
        for epoch in range(self.start_epoch, epochs):
            self._unfreeze(epoch)
            row, scores = self._run_epoch(epoch, epochs, schedule)
            accuracy, weights = best_of(row)
            improved = self._record(row, accuracy, scores[weights])
            stale = 0 if improved else stale + 1
            if schedule.end_of_epoch(accuracy) and self.world.is_main:
                self.report.info(f"epoch {epoch + 1}: plateau schedule lowered the lr to x{schedule.scale:g}")
            self._checkpoint(epoch, improved, weights)
            if self.world.is_main:
                self._publish_epoch(epoch, epochs, row, scores["raw"]["confusion"], improved)
            reason = self._stop_reason(epoch, row, stale)
            if reason:
                self.report.info(reason)
                break
        return self._finish()

    def _announce(self) -> None:
        """The lifecycle hook ``tlf_on_run_start`` and the run's one-line description (main process)."""
        if not self.world.is_main:
            return
        get_plugin_manager().notify("tlf_on_run_start", run=self.run)
        total, trainable = count_params(self.model)
        splits = self.parts.splits
        self.report.info(f"[bold]tlf[/bold] {self.config.dataset} · {self.config.backbone} · {self.policy.name} · "
                         f"{len(splits.train)} train / {len(splits.val)} val images · "
                         f"{len(splits.classes)} classes · {trainable:,}/{total:,} trainable params · "
                         f"{self.device.type} {self.placement.precision}")
        self.report.plan(self.config.epochs - self.start_epoch, self.config.epochs, self._batches_per_epoch(),
                         self.model.frozen_stages)

    def _start_schedule(self) -> Schedule:
        """The lr schedule over the run's optimizer steps (a resumed one's state restored), and the
        step count at the first epoch to train (checkpoints are taken at epoch ends)."""
        c = self.config
        steps_per_epoch = -(-self._batches_per_epoch() // c.accumulate)  # optimizer steps
        self.schedule = Schedule(c.schedule, c.epochs * steps_per_epoch, round(c.warmup_epochs * steps_per_epoch))
        if self.schedule_state is not None:
            self.schedule.load_state_dict(self.schedule_state)
        self.step = self.start_epoch * steps_per_epoch
        return self.schedule

    def _open_loggers(self) -> None:
        """The ``--log`` loggers (main process), told the run's settings, classes and history so far."""
        if self.world.is_main:
            self.loggers = Loggers.open(self.config.loggers, LoggerRequest(
                self.run_dir.path, self.config.to_dict(), list(self.parts.splits.classes), list(self.history), self.step,
                resumed=self.start_epoch > 0))

    def _unfreeze(self, epoch: int) -> None:
        """The policy's change at the start of ``epoch`` (gradual unfreezing), and the module rewrapped."""
        if self.policy.on_epoch_start(self.model, epoch, self.optimizer):
            frozen = ", ".join(self.model.frozen_stages) or "none"
            self.report.info(f"epoch {epoch + 1}: {self.policy.name} unfroze a stage; frozen now: {frozen}")
            self._wrap()

    def _run_epoch(self, epoch: int, epochs: int, schedule: Schedule) -> tuple[dict, dict[str, dict | None]]:
        """Train one epoch, then score the validation set: the epoch's metrics row and the
        scores of the ``raw`` weights and the ``ema`` ones (None without EMA)."""
        start = time.perf_counter()
        try:
            train = self._train_epoch(epoch, epochs, schedule)
            train_seconds = time.perf_counter() - start
            val = self.score_validation_set()
            ema_val = self.score_validation_set(ema=True) if self.ema is not None else None
        except torch.cuda.OutOfMemoryError:
            raise self._out_of_memory() from None
        row = {"epoch": epoch + 1, "train_loss": train["loss"], "train_acc": train["acc"],
               "val_loss": val["loss"], "val_acc": val["acc"], "lr": max(g["lr"] for g in self.optimizer.param_groups),
               "images_per_second": round(train["images"] / max(train_seconds, 1e-9), 1),
               "epoch_seconds": round(time.perf_counter() - start, 3)}
        if ema_val is not None:
            row.update(ema_val_loss=ema_val["loss"], ema_val_acc=ema_val["acc"])
        return row, {"raw": val, "ema": ema_val}

    def _record(self, row: dict, accuracy: float, scored: dict) -> bool:
        """Add the epoch's ``row`` to the history; True when its ``accuracy`` is the best so far
        (then the ``scored`` weights' logits are kept for the end-of-run evaluation)."""
        self.history.append(row)
        if not accuracy > self.best_acc:
            return False
        self.best_acc = accuracy
        self.run.best_val_logits = None if self.world.distributed else (scored["logits"], scored["labels"])
        return True

    def _publish_epoch(self, epoch: int, epochs: int, row: dict, confusion: torch.Tensor, improved: bool) -> None:
        """The epoch's line, the ``tlf_on_epoch_end`` hook and the loggers' metrics and confusion matrix."""
        ema_note = f" (EMA {row['ema_val_acc']:.3f})" if "ema_val_acc" in row else ""
        self.report.info(f"epoch {epoch + 1}/{epochs}  train loss {row['train_loss']:.4f} acc {row['train_acc']:.3f}"
                         f"  val loss {row['val_loss']:.4f} acc {row['val_acc']:.3f}{ema_note}  "
                         f"{row['images_per_second']:.0f} img/s{'  *' if improved else ''}")
        get_plugin_manager().notify("tlf_on_epoch_end", run=self.run, epoch=epoch + 1, metrics=row)
        self.loggers.log_epoch(self.step, row)
        if self.loggers:
            self.loggers.log_confusion(self.step, epoch + 1, confusion.tolist())

    def _stop_reason(self, epoch: int, row: dict, stale: int) -> str | None:
        """Why the run ends after ``epoch``: the caller asked (a tuner's pruner), or ``stale`` epochs
        without improvement reached the patience; None to go on."""
        if self.should_stop is not None and self.should_stop(epoch + 1, row):
            return f"stopped after epoch {epoch + 1} (asked by the caller, e.g. a tuner's pruner)"
        if self.config.patience is not None and stale >= self.config.patience:
            return f"early stop: val accuracy did not improve for {self.config.patience} epoch(s)"
        return None

    def _batches(self, epoch: int):
        loader = self.parts.train_loader
        loader.set_epoch(epoch)
        if self.cached is not None:  # the loader's sample order, the cached features
            order = torch.tensor([index for _, index in loader.sampler])
            return self.cached.train.batches(epoch, self.config.batch_size, order), self.cached.remainder
        return ((self._to_input(x), y.to(self.device, non_blocking=True)) for x, y in loader), self.forward_model

    def _batches_per_epoch(self) -> int:
        if self.cached is not None:
            return self.cached.train.steps_per_epoch(self.config.batch_size)
        return len(self.parts.train_loader)

    def _train_epoch(self, epoch: int, epochs: int, schedule) -> dict:
        self.model.train()
        batches, module = self._batches(epoch)
        batch_aug = self.parts.pipeline.batch if self.cached is None else None
        sums = torch.zeros(4, device=self.device, dtype=torch.float64)  # loss*n, correct, n, non-finite
        total = self._batches_per_epoch()
        accumulate = self.config.accumulate
        with self.report.epoch(f"epoch {epoch + 1}/{epochs}", total, epoch, epochs) as advance:
            for i, (x, y) in enumerate(batches):
                first, last = i % accumulate == 0, (i + 1) % accumulate == 0 or i + 1 == total
                if first:  # a new optimizer step: its lr, cleared gradients, its number of micro-batches
                    set_lr(self.optimizer, schedule(self.step))
                    self.optimizer.zero_grad(set_to_none=True)
                    micro = min(accumulate, total - i)
                logits, loss = self._forward_loss(module, x, y, batch_aug)
                self.scaler.scale(loss / micro if micro > 1 else loss).backward()
                if last:
                    self._optimizer_step()
                    if self.loggers and self.step % STEP_EVERY == 0:
                        self.loggers.log_step(self.step, {"train/loss": loss.item(), **{
                            f"lr/{g.get('name', j)}": g["lr"] for j, g in enumerate(self.optimizer.param_groups)}})
                n = y.shape[0]
                detached = loss.detach()
                sums[0] += detached * n
                sums[1] += (logits.argmax(1) == y).sum()
                sums[2] += n  # a Python number: no host-to-device copy
                sums[3] += ~torch.isfinite(detached)
                advance(n)
                if last and self.step % 50 == 0 and sums[3].item() > 0:
                    self._nonfinite(epoch)
        ddp.all_reduce_sum(sums, self.world)
        loss_sum, correct, count, nonfinite = sums.tolist()
        if nonfinite > 0:
            self._nonfinite(epoch)
        return {"loss": loss_sum / max(count, 1), "acc": correct / max(count, 1), "images": count / self.world.size}

    def _forward_loss(self, module: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_aug) -> tuple:
        target = y
        if batch_aug is not None:
            x, target = batch_aug(x, y)
        amp = self.placement.amp_dtype
        with torch.autocast(self.device.type, dtype=amp or torch.float32, enabled=amp is not None):
            logits = module(x)
            return logits, self.criterion(logits.float(), target)

    def _apply_gradients(self) -> None:
        if self.config.grad_clip:
            self.scaler.unscale_(self.optimizer)
            nn.utils.clip_grad_norm_([p for g in self.optimizer.param_groups for p in g["params"]],
                                     self.config.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()

    def training_step(self, module: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
        """One optimizer step on one batch, outside the run's step count and EMA (the lr finder's)."""
        self.optimizer.zero_grad(set_to_none=True)
        _, loss = self._forward_loss(module, x, y, self.parts.pipeline.batch if self.cached is None else None)
        self.scaler.scale(loss).backward()
        self._apply_gradients()
        return loss.item()

    def _optimizer_step(self) -> None:
        self._apply_gradients()
        self.step += 1
        if self.ema is not None:
            self.ema.update(self.model)

    def wall_seconds(self) -> float:
        """Wall time of the run so far, set-up and feature cache included, across resumes."""
        return self.earlier_seconds + time.perf_counter() - self.started

    def _out_of_memory(self) -> TlfError:
        size = self.config.batch_size
        resume = f", then resume with --resume {self.run_dir.path}" if self.run_dir and self.history else ""
        return TlfError(f"CUDA ran out of memory at batch size {size} ({self.placement.precision}, "
                        f"{self.config.image_size} px)",
                        hint=f"try --batch-size {max(1, size // 2)}, --precision bf16 or a smaller --image-size{resume}")

    def _nonfinite(self, epoch: int) -> None:
        raise TlfError(f"the training loss became NaN/inf in epoch {epoch + 1}",
                       hint="lower --lr, set --grad-clip 1.0, or use --precision fp32; the last good checkpoint is kept")

    @torch.inference_mode()
    def score_validation_set(self, ema: bool = False) -> dict:
        """Loss, accuracy and confusion matrix (``[true][predicted]`` counts) on the validation
        set of the model (or of its EMA weights), under torch.distributed summed over the
        ranks' shards, so every rank gets the same figures; and this process's logits and labels."""
        if self.cached is not None and self.cached.val is not None:
            batches = self.cached.val.batches(0, self.config.batch_size, drop_last=False)
            remainder = self.cached.ema_remainder if ema else self.cached.remainder
            logits, labels = predict_logits(remainder, batches, lambda features: features, self.placement)
        else:
            model = self.ema.model if ema else self.model
            logits, labels = self.validation.logits(model, self.parts.val_loader, self._to_input)
        sums = torch.zeros(3, dtype=torch.float64)
        n = len(self.parts.splits.classes)
        confusion = torch.zeros(n * n, dtype=torch.int64)  # [true * n + predicted]
        if len(labels):
            sums += torch.tensor([nn.functional.cross_entropy(logits, labels, reduction="sum").item(),
                                  (logits.argmax(1) == labels).sum().item(), len(labels)], dtype=torch.float64)
            confusion += torch.bincount(labels * n + logits.argmax(1), minlength=n * n)
        if self.world.distributed:
            sums = ddp.all_reduce_sum(sums.to(self.device), self.world).cpu()
            confusion = ddp.all_reduce_sum(confusion.to(self.device), self.world).cpu()
        loss_sum, correct, count = sums.tolist()
        return {"loss": loss_sum / count if count else float("nan"), "acc": correct / count if count else 0.0,
                "confusion": confusion.reshape(n, n), "logits": logits, "labels": labels}

    # ---- outputs ------------------------------------------------------------------------
    def _state(self, epoch: int) -> dict:
        state = {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                 "scaler": self.scaler.state_dict(), "rng": rng_state(), "epoch": epoch, "step": self.step,
                 "history": self.history, "best_acc": self.best_acc, "elapsed": self.wall_seconds(),
                 "config": self.config.to_dict(), "classes": list(self.parts.splits.classes), "tlf_version": __version__,
                 "schedule": self.schedule.state_dict() if self.schedule else None, "weights": "raw",
                 "feature_cache_views": self.cached.views if self.cached is not None else None,
                 "defaults_chosen": self.defaults_chosen}
        if self.ema is not None:
            state["ema"] = self.ema.state_dict()
        return state

    def _checkpoint(self, epoch: int, improved: bool, weights: str = "raw") -> None:
        """last.pt, and best.pt when ``improved``: its ``model`` holds the better of the raw and
        EMA weights (``weights`` says which), so evaluate and export use it as it is."""
        if not self.world.is_main:
            return
        state = self._state(epoch)
        if improved:  # best before last: a failed or interrupted best.pt write leaves last.pt at the epoch
            best = {**state, "model": self.ema.model.state_dict(), "weights": "ema"} if weights == "ema" else state
            self.run_dir.save_checkpoint("best", best)  # before, so a resume trains this epoch again
        self.run_dir.save_checkpoint("last", state)
        self.run_dir.write_metrics(self.history)
        self._plot()

    def _plot(self) -> None:
        plot_curves(self.history, self.run_dir.path / "curves.png",
                    title=f"{self.config.dataset} · {self.config.backbone} · {self.policy.name}")

    def _finish(self) -> dict:
        summary = None
        if self.world.is_main:
            total, trainable = count_params(self.model)
            best = max(self.history, key=lambda r: best_of(r)[0]) if self.history else {}
            summary = {
                "run_dir": str(self.run_dir.path), "dataset": self.config.dataset, "backbone": self.config.backbone,
                "policy": self.policy.name, "epochs": len(self.history), "planned_epochs": self.config.epochs,
                "best_val_accuracy": best_of(best)[0] if best else None, "best_epoch": best.get("epoch"),
                "best_weights": best_of(best)[1] if best else None, "ema": self.config.ema,
                "lr": self.config.lr, "lr_find": self.lr_finding.to_dict() if self.lr_finding else None,
                "head_lr_scale": self.config.head_lr_scale, "defaults_chosen": self.defaults_chosen,
                "schedule": self.config.schedule, "accumulate": self.config.accumulate,
                "class_weights": self.class_weights, "sampler": self.config.sampler,
                "last_val_accuracy": self.history[-1]["val_acc"] if self.history else None,
                "last_train_accuracy": self.history[-1]["train_acc"] if self.history else None,
                "seconds": round(self.wall_seconds(), 2),
                "images_per_second": round(np.median([r["images_per_second"] for r in self.history]), 1) if self.history else None,
                "total_params": total, "trainable_params": trainable, "device": str(self.device),
                "precision": self.placement.precision, "feature_cache": self.cached is not None,
                "frozen_engine": self.cached.engine if self.cached is not None else None,
                "validation_engine": "torch, on the cached features" if self.cached is not None and self.cached.val is not None
                else self.validation.note,
                "tlf_version": __version__,
            }
            self.run_dir.write_json("summary.json", summary)
            self.run.summary = summary
            get_plugin_manager().notify("tlf_on_run_end", run=self.run, summary=summary)
            self.loggers.finish(summary)
        ddp.close_world(self.world)
        return summary or {}


def best_of(row: dict) -> tuple[float, str]:
    """An epoch's better validation accuracy and whose it is: ``raw`` weights or ``ema``
    (the raw weights on a tie)."""
    if row.get("ema_val_acc", -1.0) > row["val_acc"]:
        return row["ema_val_acc"], "ema"
    return row["val_acc"], "raw"


def predict_logits(model: nn.Module, loader, to_input, placement: Placement) -> tuple[torch.Tensor, torch.Tensor]:
    """Float logits and labels (on the CPU) of every batch of ``loader``."""
    model.eval()
    amp = placement.amp_dtype
    outs, labels = [], []
    with torch.inference_mode(), torch.autocast(placement.device.type, dtype=amp or torch.float32, enabled=amp is not None):
        for images, y in loader:
            outs.append(model(to_input(images)).float())
            labels.append(y)
    if not outs:
        return torch.zeros(0, 0), torch.zeros(0, dtype=torch.long)
    return torch.cat(outs).cpu(), torch.cat(labels).cpu()
