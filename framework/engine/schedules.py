"""Learning-rate schedules: a linear warm-up, then cosine, one-cycle, step, constant or plateau.

A schedule gives the multiplier of every parameter group's initial lr at an optimizer
step, so discriminative learning rates keep their ratios and groups added mid-run
(gradual unfreezing) follow it too. Every shape but ``plateau`` is a pure function of
the step: resuming needs only the step count. These are written as multipliers rather
than torch's ``LRScheduler`` classes because those keep per-group state that would have
to be rebuilt each time a policy adds a group; ``plateau`` keeps one number (the current
reduction) and its patience counter, saved in the checkpoint.
"""
from __future__ import annotations

import math

from ..config import SCHEDULES

ONECYCLE_START = 0.3  # fraction of the steps spent rising (torch's OneCycleLR pct_start)
ONECYCLE_DIV = 25.0  # start at lr / 25, end at lr / 25e4 (torch's div_factor, final_div_factor)
ONECYCLE_FINAL_DIV = 1e4
STEP_GAMMA = 0.1  # step: x0.1 after each third of the steps after the warm-up
PLATEAU_FACTOR = 0.1  # plateau: x0.1 after PLATEAU_PATIENCE epochs without a better val accuracy
PLATEAU_PATIENCE = 2


def _cos(start: float, end: float, progress: float) -> float:
    return end + (start - end) * 0.5 * (1.0 + math.cos(math.pi * min(max(progress, 0.0), 1.0)))


class Schedule:
    """The lr multiplier at each optimizer step (``schedule(step)``), for ``total_steps`` steps."""

    def __init__(self, name: str, total_steps: int, warmup_steps: int) -> None:
        if name not in SCHEDULES:
            raise ValueError(f"unknown schedule {name!r}")
        self.name = name
        self.total_steps = max(total_steps, 1)
        self.warmup_steps = min(warmup_steps, self.total_steps - 1) if self.total_steps > 1 else 0
        self.scale = 1.0  # plateau's reduction so far
        self.best: float | None = None
        self.stale = 0

    def __call__(self, step: int) -> float:
        if self.name == "onecycle":  # its own rise replaces the linear warm-up
            rise = max(round(ONECYCLE_START * self.total_steps), 1)
            low = 1.0 / ONECYCLE_DIV
            if step < rise:
                return _cos(low, 1.0, step / rise)
            return _cos(1.0, low / ONECYCLE_FINAL_DIV, (step - rise) / max(self.total_steps - rise, 1))
        if step < self.warmup_steps:
            return (step + 1) / (self.warmup_steps + 1)
        progress = (step - self.warmup_steps) / max(self.total_steps - self.warmup_steps, 1)
        if self.name == "cosine":
            return _cos(1.0, 0.0, progress)
        if self.name == "step":
            return STEP_GAMMA ** min(int(3 * progress), 2)
        return self.scale  # constant: 1.0; plateau: reduced by end_of_epoch

    def end_of_epoch(self, val_acc: float) -> bool:
        """Tell ``plateau`` the epoch's validation accuracy; True when it lowered the lr."""
        if self.name != "plateau":
            return False
        if self.best is None or val_acc > self.best:
            self.best, self.stale = val_acc, 0
            return False
        self.stale += 1
        if self.stale < PLATEAU_PATIENCE:
            return False
        self.scale *= PLATEAU_FACTOR
        self.stale = 0
        return True

    def state_dict(self) -> dict:
        return {"scale": self.scale, "best": self.best, "stale": self.stale}

    def load_state_dict(self, state: dict) -> None:
        self.scale, self.best, self.stale = float(state["scale"]), state["best"], int(state["stale"])
