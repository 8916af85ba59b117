"""``--ema DECAY``: the averaged weights, updated after every optimizer step, validated and
checkpointed beside the raw ones (best.pt keeps whichever validates better)."""
from __future__ import annotations

from typing import Any

from tlf.engine.callback import Callback
from tlf.engine.ema import WeightEma


class Ema(Callback):
    order = 0  # created before the checkpoint callback restores a resumed run; updated first after a step
    name = "ema"

    def __init__(self, decay: float) -> None:
        self.decay = decay
        self.ema: WeightEma | None = None

    def after_create(self, loop: Any) -> None:
        self.ema = WeightEma(loop.model, self.decay)
        loop.weights["ema"] = self.ema.model

    def after_step(self, loop: Any) -> None:
        self.ema.update(loop.model)

    def state_dict(self) -> dict[str, Any]:
        return self.ema.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.ema.load_state_dict(state)
