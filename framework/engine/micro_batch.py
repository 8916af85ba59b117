"""A micro-batch that fits the memory actually available, with gradient accumulation up to the
requested batch (``--batch-size`` x ``--accumulate`` images per optimizer step stay the same).

Before the loaders are built, a short probe runs the model forward at 1 and 2 images with
autograd on and adds up the tensors autograd keeps for the backward pass
(``torch.autograd.graph.saved_tensors_hooks``): the difference is what one more image of a
training step holds, whatever the device, allocator or other processes (an RSS reading is
blurred by the allocator keeping freed memory, :mod:`tlf.heap`). The backward pass holds
gradients of some of those activations too (:data:`ACTIVATION_FACTOR`, with a margin). With the
weights' gradients and optimizer state, a step of ``m`` images needs about
``fixed + m x per_image``; the largest divisor ``m`` of the batch that fits in the step's room
(:func:`step_room`) is chosen.

On the CPU the room is also bounded by a memory target for the whole process
(``$TLF_MEMORY_TARGET``, default :data:`DEFAULT_TARGET`) less what the process holds before
training, so a default run stays within a laptop's memory on a machine with plenty free; a
larger target (``TLF_MEMORY_TARGET=16G``) keeps larger micro-batches.
"""
from __future__ import annotations

import dataclasses
import os

import torch
from torch import nn

from ..address_space import address_space_limit
from ..adaptive_defaults import Choice
from ..config import RunConfig
from ..data.cache import parse_bytes
from ..errors import TlfError

ACTIVATION_FACTOR = 1.4  # saved activations -> a step's peak (measured 1.1-1.25x: benchmarks/micro_batch_memory.py)
HEADROOM = 0.6  # share of the available memory a training step may take (loaders, caches, the rest)
OPTIMIZER_COPIES = 3  # per trainable weight: its gradient and two moment buffers (AdamW)
TARGET_ENV = "TLF_MEMORY_TARGET"
DEFAULT_TARGET = 3 * 10**9  # resident bytes of a CPU run's process (3 GB): an 8 GB laptop runs the defaults
SLACK = 320 << 20  # a run's peak over held + its step's estimate: the allocator, the loaders' batches (measured 190-290 MiB)


def fitting_micro_batch(batch: int, per_image: float, fixed: float, room: float) -> int:
    """The largest divisor of ``batch`` whose step (``fixed + m x per_image`` bytes) fits in
    ``room`` bytes; 1 when none does."""
    for m in range(batch, 0, -1):
        if batch % m == 0 and fixed + m * per_image <= room:
            return m
    return 1


def memory_target() -> int:
    """Resident bytes a CPU run's process aims to stay within: ``$TLF_MEMORY_TARGET`` or :data:`DEFAULT_TARGET`."""
    text = os.environ.get(TARGET_ENV)
    if not text:
        return DEFAULT_TARGET
    try:
        target = parse_bytes(text)
    except (ValueError, OverflowError):
        target = 0
    if target <= 0:
        raise TlfError(f"{TARGET_ENV}={text!r} is not a size", hint="write bytes or a size like 3G or 512M")
    return target


def step_room(device: torch.device) -> tuple[int, str] | None:
    """Bytes a training step may take on ``device`` and where that figure comes from, in words;
    None where the memory cannot be asked. :data:`HEADROOM` of the available memory, and on the
    CPU at most the memory target less the process's resident memory now, and the address-space
    limit less the address space the process maps now (each less :data:`SLACK`)."""
    available = available_bytes(device)
    if available is None:
        return None
    room, words = int(available * HEADROOM), f"{available / 2**20:,.0f} MiB available"
    if device.type != "cpu":
        return room, words
    import psutil
    memory = psutil.Process().memory_info()
    bounds = [(memory_target(), memory.rss, f"a memory target of {{:,.0f}} MiB (${TARGET_ENV})"),
              (address_space_limit(), memory.vms, "an address-space limit of {:,.0f} MiB (ulimit -v)")]
    for bound, held, name in bounds:
        if bound is not None and bound - held - SLACK < room:
            room = bound - held - SLACK
            words = f"{words}, {name.format(bound / 2**20)} with {held / 2**20:,.0f} MiB already held"
    return room, words


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
    room = step_room(device)
    batch = config.batch_size
    if room is None or batch == 1:
        return config, None
    fixed, per_image = step_bytes(model, config.image_size, device, config.channels_last)
    micro = fitting_micro_batch(batch, per_image, fixed, room[0])
    if micro == batch:
        return config, None
    accumulate = config.accumulate * batch // micro
    why = (f"a step of {batch} images needs about {(fixed + batch * per_image) / 2**20:,.0f} MiB, "
           f"{room[1]}: {micro} images x {accumulate} accumulated, {micro * accumulate} per optimizer step as asked")
    return dataclasses.replace(config, batch_size=micro, accumulate=accumulate).checked(), Choice(
        "batch_size", micro, batch, why)
