"""Optimizer and learning-rate schedule (linear warm-up, then cosine to zero).

The schedule is a pure function of the step, so resuming needs only the step count and
parameter groups added mid-run (gradual unfreezing) follow it too."""
from __future__ import annotations

import math

import torch


def build_optimizer(groups: list[dict], name: str, lr: float, weight_decay: float, momentum: float,
                    fused: bool = False) -> torch.optim.Optimizer:
    """AdamW or SGD over the policy's parameter groups (each group may carry its own lr)."""
    for group in groups:
        group.setdefault("lr", lr)
        group["initial_lr"] = group["lr"]
    if name == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=momentum, weight_decay=weight_decay, nesterov=True)
    return torch.optim.AdamW(groups, lr=lr, weight_decay=weight_decay, fused=fused or None)


def warmup_cosine(total_steps: int, warmup_steps: int):
    """The multiplier of each group's initial lr at a step."""
    total_steps = max(total_steps, 1)
    warmup_steps = min(warmup_steps, total_steps - 1) if total_steps > 1 else 0

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / (warmup_steps + 1)
        progress = (step - warmup_steps) / max(total_steps - warmup_steps, 1)
        return 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))

    return factor


def set_lr(optimizer: torch.optim.Optimizer, factor: float) -> None:
    """Scale every group's initial lr by the schedule's factor (groups added later included)."""
    for group in optimizer.param_groups:
        group["lr"] = group.setdefault("initial_lr", group["lr"]) * factor
