"""Callback ``target-accuracy:ACC``: end the run at the first epoch whose validation accuracy
(the task's criterion) reaches ACC; the epoch is checkpointed and reported like any other."""
from __future__ import annotations

from typing import Any

from tlf.engine.callback import Callback, CancelFit


def parse_target(text: str) -> float:
    """``"0.9"`` -> 0.9; a number in (0, 1]."""
    value = float(text)
    if not 0 < value <= 1:
        raise ValueError("the target is an accuracy in (0, 1], e.g. 0.9")
    return value


class TargetAccuracy(Callback):
    """Stops the fit once ``val_<metric>`` >= ``target``."""

    name = "target-accuracy"

    def __init__(self, target: float) -> None:
        self.target = target
        self.reached_at: int | None = None  # the epoch that reached it (1-based), in summary.json

    def after_epoch(self, loop: Any) -> None:
        value = loop.row[f"val_{loop.task.metric}"]
        if value >= self.target:
            self.reached_at = loop.epoch + 1
            raise CancelFit(f"target reached: {loop.task.metric_label} {value:.3f} >= {self.target:g} "
                            f"at epoch {loop.epoch + 1}")

    def summary(self, loop: Any) -> dict[str, Any]:
        return {"target_accuracy": {"target": self.target, "reached_at_epoch": self.reached_at}}
