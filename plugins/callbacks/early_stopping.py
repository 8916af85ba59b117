"""``--patience N``: the run ends when the task's criterion has not improved for N epochs."""
from __future__ import annotations

from typing import Any

from tlf.engine.callback import Callback, CancelFit


class EarlyStopping(Callback):
    order = 20
    name = "early-stopping"

    def __init__(self, patience: int) -> None:
        self.patience = patience
        self.stale = 0  # epochs since the best one

    def after_epoch(self, loop: Any) -> None:
        self.stale = 0 if loop.improved else self.stale + 1
        if self.stale >= self.patience:
            raise CancelFit(f"early stop: {loop.task.metric_label} did not improve for {self.patience} epoch(s)")

    def state_dict(self) -> dict[str, Any]:
        return {"stale": self.stale}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.stale = int(state["stale"])
