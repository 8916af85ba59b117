"""A micro-batch that fits the memory actually available, with gradient accumulation up to the
requested batch (``--batch-size`` x ``--accumulate`` images per optimizer step stay the same).

Before the loaders are built, a short probe runs the model forward at 1 and 2 images with
autograd on and adds up the tensors autograd keeps for the backward pass
(``torch.autograd.graph.saved_tensors_hooks``): the difference is what one more image of a
training step holds, whatever the device, allocator or other processes (an RSS reading is
blurred by the allocator keeping freed memory, :mod:`tlf.heap`). The backward pass holds
gradients of some of those activations too (:data:`ACTIVATION_FACTOR`, with a margin). With the
weights' gradients and optimizer state, a step of ``m`` images needs about
``fixed + m x per_image``; the largest divisor ``m`` of the batch that fits in
:data:`HEADROOM` of the available memory (``psutil``; free GPU memory on CUDA) is chosen.
"""
from __future__ import annotations

import dataclasses

import torch
from torch import nn

from ..adaptive_defaults import Choice
from ..config import RunConfig

ACTIVATION_FACTOR = 1.4  # saved activations -> a step's peak (measured 1.1-1.25x: benchmarks/micro_batch_memory.py)
HEADROOM = 0.6  # share of the available memory a training step may take (loaders, caches, the rest)
OPTIMIZER_COPIES = 3  # per trainable weight: its gradient and two moment buffers (AdamW)


def fitting_micro_batch(batch: int, per_image: float, fixed: float, available: float) -> int:
    """The largest divisor of ``batch`` whose step (``fixed + m x per_image`` bytes) fits in
    :data:`HEADROOM` of ``available`` bytes; 1 when none does."""
    room = available * HEADROOM - fixed
    for m in range(batch, 0, -1):
        if batch % m == 0 and m * per_image <= room:
            return m
    return 1


def available_bytes(device: torch.device) -> int | None:
    """Memory a run may still take: free GPU memory on CUDA, available RAM on the CPU; None elsewhere."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    if device.type == "cpu":
        import psutil
        return psutil.virtual_memory().available
    return None


def step_bytes(model: nn.Module, image_size: int, device: torch.device, channels_last: bool) -> tuple[int, int]:
    """(fixed, per image) bytes of a training step of ``model`` on ``image_size`` inputs (see the module)."""
    trainable = sum(p.numel() * p.element_size() for p in model.parameters() if p.requires_grad)
    one, two = (_saved_bytes(model, n, image_size, device, channels_last) for n in (1, 2))
    return OPTIMIZER_COPIES * trainable, int(max(two - one, 0) * ACTIVATION_FACTOR)


def _saved_bytes(model: nn.Module, images: int, image_size: int, device: torch.device, channels_last: bool) -> int:
    """Bytes of the distinct tensors autograd saves for backward in a forward of ``images`` images
    (eval mode, so BatchNorm statistics do not move; every module's mode is restored)."""
    storages: dict[int, int] = {}

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        storages[storage.data_ptr()] = storage.nbytes()
        return tensor

    modes = {module: module.training for module in model.modules()}
    x = torch.zeros(images, 3, image_size, image_size, device=device)
    if channels_last:
        x = x.to(memory_format=torch.channels_last)
    try:
        model.eval()
        with torch.enable_grad(), torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            model(x)
    finally:
        for module, mode in modes.items():
            module.training = mode
    return sum(storages.values())


def fit_micro_batch(config: RunConfig, model: nn.Module, device: torch.device) -> tuple[RunConfig, Choice | None]:
    """``config`` with a smaller ``batch_size`` and a larger ``accumulate`` (same images per
    optimizer step) when a step of ``batch_size`` images would not fit; the choice, or None."""
    available = available_bytes(device)
    batch = config.batch_size
    if available is None or batch == 1:
        return config, None
    fixed, per_image = step_bytes(model, config.image_size, device, config.channels_last)
    micro = fitting_micro_batch(batch, per_image, fixed, available)
    if micro == batch:
        return config, None
    accumulate = config.accumulate * batch // micro
    why = (f"a step of {batch} images needs about {(fixed + batch * per_image) / 2**20:,.0f} MiB, "
           f"{available / 2**20:,.0f} MiB available: {micro} images x {accumulate} accumulated, "
           f"{micro * accumulate} per optimizer step as asked")
    return dataclasses.replace(config, batch_size=micro, accumulate=accumulate).checked(), Choice(
        "batch_size", micro, batch, why)
