"""The learning-rate range test (``tlf lr-find``; ``tlf train --lr auto``: :func:`suggested_lr`, the
range test of the plan's last resolution step, :meth:`tlf.plan.Resolution.with_lr`).

The lr grows exponentially from ``START`` to ``END`` over at most ``STEPS`` optimizer
steps of the run's own training batches (with the feature cache when the run has one);
the loss is smoothed with an exponential moving average (bias-corrected) and the test
stops when it exceeds ``DIVERGE`` times its minimum. The suggestion is the lr where the
smoothed loss falls fastest against log(lr), before its minimum (fastai's "steep" rule), each
slope a line fitted over half a decade of lr.
Model, optimizer, GradScaler and RNG states are restored afterwards, so the run then
starts from exactly the weights it would have had without the test.

Written here because the finders in libraries (fastai, Lightning, torch-lr-finder) each
need their own training loop and data objects; this one drives tlf's loop.
"""
from __future__ import annotations

import copy
import itertools
import math
from dataclasses import dataclass

import numpy as np
import torch

from ..errors import TlfError
from . import distributed as ddp
from .optim import set_lr
from .rng import rng_state, set_rng_state

START, END, STEPS = 1e-7, 10.0, 200
SMOOTHING = 0.98
DIVERGE = 4.0
WINDOW = 0.5  # decades of lr over which each slope is fitted
RULE = "steepest descent of the smoothed loss against log(lr) (slope fitted over half a decade), before its minimum"


@dataclass
class LrFinding:
    lrs: list[float]  # the base lr of each step (each parameter group gets it times its policy scale)
    losses: list[float]  # smoothed
    suggestion: float
    rule: str = RULE

    def to_dict(self) -> dict:
        return {"suggested_lr": self.suggestion, "rule": self.rule, "steps": len(self.lrs),
                "lr_range": [self.lrs[0], self.lrs[-1]] if self.lrs else []}


def suggest(lrs: list[float], losses: list[float]) -> float:
    """The lr of the steepest descent of ``losses`` (smoothed) before their minimum."""
    losses_arr = np.asarray(losses, dtype=float)
    lowest = int(np.argmin(losses_arr))
    if lowest < 3:
        raise TlfError(f"the loss did not fall in the lr range test: it rose from the start "
                       f"(lr {lrs[0]:.1e} to {lrs[min(lowest + 1, len(lrs) - 1)]:.1e})",
                       hint="check the data and labels, or pass a fixed --lr instead of auto")
    x, y = np.log10(np.asarray(lrs[:lowest + 1], dtype=float)), losses_arr[:lowest + 1]
    # A point-to-point slope picks the noise of the first steps (the average is young there and
    # the lr too small to matter); a line fitted over WINDOW decades does not. Centres whose
    # window would start before the test are left out when there are others.
    centres = [i for i in range(len(x)) if x[i] - x[0] >= WINDOW / 2] or list(range(len(x)))

    def slope(i: int) -> float:
        near = np.abs(x - x[i]) <= WINDOW / 2
        return float(np.polyfit(x[near], y[near], 1)[0]) if near.sum() >= 2 else 0.0

    return float(lrs[min(centres, key=slope)])


def find_lr(trainer, steps: int = STEPS, start: float = START, end: float = END) -> LrFinding:
    """Run the range test with ``trainer``'s model, optimizer and batches, then restore them."""
    if not any(p.requires_grad for p in trainer.model.parameters()):
        raise TlfError(f"--lr auto needs trainable parameters, and policy {trainer.policy.name} trains none",
                       hint="pass --lr VALUE, or a policy that trains something (e.g. transfer)")
    saved = (copy.deepcopy(trainer.model.state_dict()), copy.deepcopy(trainer.optimizer.state_dict()),
             copy.deepcopy(trainer.scaler.state_dict()), rng_state())
    for group in trainer.optimizer.param_groups:  # the test's lr is the base lr; groups keep their policy scale
        group["initial_lr"] = group["initial_lr"] / trainer.base_lr
    ratio = (end / start) ** (1 / max(steps - 1, 1))
    lrs, losses, average, best = [], [], 0.0, math.inf
    try:
        epoch = 0
        while len(lrs) < steps:
            batches = iter(trainer.source.train_batches(epoch))
            trainer.model.train()
            # each step over the run's effective batch: as many micro-batches as it accumulates
            for first in batches:
                lr = start * ratio ** len(lrs)
                set_lr(trainer.optimizer, lr)
                loss = trainer.training_step([first, *itertools.islice(batches, trainer.config.accumulate - 1)])
                if not math.isfinite(loss):
                    break
                average = SMOOTHING * average + (1 - SMOOTHING) * loss
                smoothed = average / (1 - SMOOTHING ** (len(lrs) + 1))
                lrs.append(lr)
                losses.append(smoothed)
                best = min(best, smoothed)
                if smoothed > DIVERGE * best or len(lrs) >= steps:
                    break
            else:
                epoch += 1
                continue
            break
    finally:
        model_state, optimizer_state, scaler_state, rng = saved
        trainer.model.load_state_dict(model_state)
        trainer.optimizer.load_state_dict(optimizer_state)  # the groups' lr and initial_lr too
        trainer.scaler.load_state_dict(scaler_state)
        set_rng_state(rng)
        torch.nn.Module.zero_grad(trainer.model, set_to_none=True)
    if len(lrs) < 5:
        raise TlfError(f"the lr range test diverged at once (non-finite or exploding loss after {len(lrs)} step(s) "
                       f"from lr {start:.0e})", hint="pass a fixed --lr instead of auto")
    return LrFinding(lrs, losses, suggest(lrs, losses))


def suggested_lr(trainer) -> tuple[float, str]:
    """``--lr auto``: the range test on ``trainer``'s prepared batches, rank 0's suggestion on every
    rank, and the rule it followed; the finding is kept as ``trainer.lr_finding`` (lr_find.png and
    summary.json's ``lr_find``, by the ``lr-finder`` callback)."""
    finding = find_lr(trainer)
    finding.suggestion = ddp.broadcast_object(finding.suggestion, trainer.world)
    trainer.lr_finding = finding
    trainer.report.info(f"lr auto: {finding.suggestion:.2e} ({finding.rule}, {len(finding.lrs)} steps)")
    return finding.suggestion, finding.rule
