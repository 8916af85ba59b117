"""The optimizer over the policy's parameter groups, and setting their lr from a schedule
(:mod:`tlf.engine.schedules`)."""
from __future__ import annotations

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


def set_lr(optimizer: torch.optim.Optimizer, factor: float) -> None:
    """Scale every group's initial lr by the schedule's factor (groups added later included)."""
    for group in optimizer.param_groups:
        group["lr"] = group.setdefault("initial_lr", group["lr"]) * factor
