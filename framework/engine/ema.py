"""``--ema DECAY``: an exponential moving average of the model's weights, on torch's
``AveragedModel`` with ``get_ema_multi_avg_fn``.

After each optimizer step ``ema = decay * ema + (1 - decay) * weights`` (the first update
copies the weights). Buffers (BatchNorm statistics) are averaged too, so the averaged
model validates as a whole; frozen parameters stay what they are.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn


class WeightEma:
    """The averaged copy of ``model`` (``.model``: a module of the same class, for validation
    and checkpoints)."""

    def __init__(self, model: nn.Module, decay: float) -> None:
        self.decay = decay
        self.averaged = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)
        self.averaged.requires_grad_(False)

    @property
    def model(self) -> nn.Module:
        return self.averaged.module

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        self.averaged.update_parameters(model)

    def state_dict(self) -> dict:
        return self.averaged.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.averaged.load_state_dict(state)
