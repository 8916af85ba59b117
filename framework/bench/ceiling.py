"""The model-only ceiling: training steps and frozen forward passes on a batch already on the device.

No data loading, no copy: the fastest any training loop with this model, batch and precision
can go. The step is ``init``-style (every weight trained, AdamW, fused on CUDA as in
training); the frozen pass is the backbone-and-head forward of ``transfer``'s feature pass.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from ..engine.placement import AMP_DTYPES
from .timing import Probe

STEPS = 2  # optimizer steps (or forward passes) per round


def synchronizer(device: torch.device) -> Callable[[], None]:
    """Waits for ``device``'s queued work (``torch.cuda.synchronize``, ``torch.mps.synchronize``);
    the CPU runs synchronously."""
    return (lambda: None) if device.type == "cpu" else getattr(torch, device.type).synchronize


def random_batch(batch_size: int, image_size: int, num_classes: int, device: torch.device,
                 channels_last: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """A normalized-looking float batch and its labels, made on ``device``."""
    x = torch.randn(batch_size, 3, image_size, image_size, device=device)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    return x, torch.randint(0, num_classes, (batch_size,), device=device)


def train_step(model: nn.Module, device: torch.device, precision: str) -> Callable[[torch.Tensor, torch.Tensor], None]:
    """One AdamW step (forward, loss, backward, step) at ``precision``, a loss scaler for fp16."""
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4,
                                  fused=device.type == "cuda")
    scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")
    amp = AMP_DTYPES.get(precision)
    criterion = nn.CrossEntropyLoss()

    def step(x: torch.Tensor, y: torch.Tensor) -> None:
        model.train()
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=amp or torch.float32, enabled=amp is not None):
            loss = criterion(model(x).float(), y)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
    return step


def forward_pass(model: nn.Module, device: torch.device, precision: str) -> Callable[[torch.Tensor], None]:
    """One frozen forward pass (eval mode, no autograd) at ``precision``."""
    amp = AMP_DTYPES.get(precision)

    def forward(x: torch.Tensor) -> None:
        model.eval()
        with torch.inference_mode(), torch.autocast(device.type, dtype=amp or torch.float32, enabled=amp is not None):
            model(x)
    return forward


def ceiling_probes(model: nn.Module, device: torch.device, precisions: tuple[str, ...], batch: tuple,
                   label: str) -> list[Probe]:
    """``label``'s model-only probes: a training step and a frozen pass at each precision."""
    x, y = batch
    sync = synchronizer(device)
    probes = []
    for precision in precisions:
        step, forward = train_step(model, device, precision), forward_pass(model, device, precision)
        probes.append(Probe(f"{label}/model train/{precision}", _repeat(lambda s=step: s(x, y), len(x)), sync))
        probes.append(Probe(f"{label}/model frozen/{precision}", _repeat(lambda f=forward: f(x), len(x)), sync))
    return probes


def _repeat(call: Callable[[], None], images: int) -> Callable[[], int]:
    def run() -> int:
        for _ in range(STEPS):
            call()
        return STEPS * images
    return run
