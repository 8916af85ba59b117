"""What the frozen pass of a run will cost on the CPU, said before it starts when it is long.

A ViT-S/14 is over ten times the compute of EfficientNet-Lite0 at the same image size
(docs/performance.md, "Foundation backbones on the CPU"): a user who picks one should know up front. The estimate
times the frozen prefix with torch on a few random images at the run's size and threads (the
onnxruntime engine, which ``auto`` picks on the CPU, was 1.5x faster on Lite0 and 0.7-1.0x on
ViTs at one thread, docs/performance.md), then scales to the images the cache will run.
"""
from __future__ import annotations

import time
from typing import TYPE_CHECKING

import torch
from torch import nn

if TYPE_CHECKING:
    from .parts import TrainingParts
    from .progress import Reporter

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


def announce(parts: TrainingParts, distributed: bool, device: torch.device, report: Reporter) -> None:
    """Tell the user, before a CPU run starts, when its frozen pass (the feature cache over its
    views of the training set, and the validation set) is expected to be long."""
    from ..features.cache import plan_feature_cache

    config = parts.config
    if device.type != "cpu":
        return
    plan = plan_feature_cache(config.feature_cache, parts.model, parts.policy, parts.pipeline, distributed,
                              config.epochs or 1)
    if plan is None:
        return
    images = plan.views * len(parts.splits.train) + len(parts.splits.val)
    line = announcement(parts.model, plan.prefix, config.image_size, images)
    if line is not None:
        report.info(line)
