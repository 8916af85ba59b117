"""What a training run gives back: ``tlf.train``'s result, and what lifecycle hooks receive."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ..config import RunConfig


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
