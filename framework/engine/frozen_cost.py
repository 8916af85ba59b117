"""What the frozen pass of a run will cost on the CPU, said before it starts when it is long.

A ViT-S/14 is over ten times the compute of EfficientNet-Lite0 at the same image size
(docs/performance.md, "Foundation backbones on the CPU"): a user who picks one should know up front. The estimate
times the frozen prefix with torch on a few random images at the run's size and threads (the
onnxruntime engine, which ``auto`` picks on the CPU, was 1.5x faster on Lite0 and 0.7-1.0x on
ViTs at one thread, docs/performance.md), then scales to the images the cache will run.
"""
from __future__ import annotations

import time
import torch
from torch import nn

ANNOUNCE_SECONDS = 60.0  # a frozen pass expected to take longer than this is announced
PROBE_IMAGES = 4


def seconds_per_image(model: nn.Module, prefix: int, image_size: int) -> float:
    """Seconds the first ``prefix`` backbone stages of ``model`` take per image on the CPU (torch,
    fp32, this process's threads), timed on :data:`PROBE_IMAGES` random images after a warm-up."""
    stages = nn.Sequential(*list(model.backbone.stages.children())[:prefix])
    was_training = stages.training
    stages.eval()
    x = torch.randn(PROBE_IMAGES, 3, image_size, image_size, generator=torch.Generator().manual_seed(0))  # run's RNG untouched
    with torch.inference_mode():
        stages(x[:1])  # warm-up: allocations, one-off kernels
        start = time.perf_counter()
        stages(x)
        elapsed = time.perf_counter() - start
    stages.train(was_training)
    return elapsed / PROBE_IMAGES


def announcement(model: nn.Module, prefix: int, image_size: int, images: int) -> str | None:
    """A line announcing the frozen pass over ``images`` images when it is expected to take
    longer than :data:`ANNOUNCE_SECONDS`; None otherwise."""
    per_image = seconds_per_image(model, prefix, image_size)
    seconds = per_image * images
    if seconds <= ANNOUNCE_SECONDS:
        return None
    took = f"{seconds / 60:.0f} min" if seconds >= 120 else f"{seconds:.0f} s"
    return (f"frozen pass: about {took} on this CPU for {images:,} images at {image_size} px "
            f"({1 / per_image:.1f} img/s, timed with torch on {PROBE_IMAGES} images; a smaller backbone or "
            f"--image-size costs less)")
