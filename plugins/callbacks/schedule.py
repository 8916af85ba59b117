"""``--schedule``: the lr multiplier of each optimizer step, set before its first micro-batch."""
from __future__ import annotations

from typing import Any

from tlf.engine.callback import Callback
from tlf.engine.optim import set_lr
from tlf.engine.schedules import Schedule


class LrSchedule(Callback):
    order = 10  # before the checkpoint: a plateau's reduction is saved with its epoch
    name = "schedule"

    def __init__(self) -> None:
        self.schedule: Schedule | None = None
        self.restored: dict | None = None  # a resumed plateau schedule's state, until the schedule exists

    def before_fit(self, loop: Any) -> None:
        c, steps = loop.config, loop.steps_per_epoch
        self.schedule = Schedule(c.schedule, c.epochs * steps, round(c.warmup_epochs * steps))
        if self.restored is not None:
            self.schedule.load_state_dict(self.restored)

    def before_batch(self, loop: Any) -> None:
        if loop.starts_step:
            set_lr(loop.optimizer, self.schedule(loop.step))

    def after_epoch(self, loop: Any) -> None:
        if self.schedule.end_of_epoch(loop.task.best_of(loop.row)[0]):
            loop.report.info(f"epoch {loop.epoch + 1}: plateau schedule lowered the lr to x{self.schedule.scale:g}")

    def state_dict(self) -> dict | None:
        return self.schedule.state_dict() if self.schedule is not None else self.restored

    def load_state_dict(self, state: dict) -> None:
        self.restored = state
