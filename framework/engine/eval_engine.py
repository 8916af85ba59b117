"""The engine that runs a whole model over an evaluation set (``tlf evaluate --engine``).

On the CPU at fp32, ``auto`` runs the model through onnxruntime, the frozen pass's engine
(:func:`tlf.engine.features.choose_engine`): exported once per weights and input size,
cached under ``$TLF_HOME/frozen-onnx`` (the next evaluation of the same checkpoint reuses
it), parity-gated against torch on the first batch, torch again with the reason when the
model does not export or disagrees. Elsewhere (a GPU, bf16) torch runs it. Measured in
docs/performance.md ("Evaluation through onnxruntime").
"""
from __future__ import annotations

from typing import Callable, Iterable, Sequence

import torch
from torch import nn

from ..errors import TlfError
from .placement import Placement

ENGINES = ("auto", "torch", "onnxruntime")
PARITY_IMAGES = 8  # images of the first batch the export is checked on


def evaluation_logits(setting: str, model: nn.Module, loader: Iterable, to_input: Callable, placement: Placement,
                      mean: Sequence[float], std: Sequence[float],
                      label: str) -> tuple[torch.Tensor, torch.Tensor, str]:
    """Float logits and labels (CPU) of every batch of ``loader`` (uint8 images), and a note on
    the engine that computed them; ``label`` names the cached export."""
    from .trainer import predict_logits

    on_cpu, fp32 = placement.device.type == "cpu", placement.amp_dtype is None
    if setting == "onnxruntime" and not (on_cpu and fp32):
        raise TlfError(f"--engine onnxruntime runs on the CPU at fp32, but this evaluation is on "
                       f"{placement.device.type} at {placement.precision}",
                       hint="use --engine auto or torch, or --device cpu --precision fp32")
    if setting == "torch" or not (on_cpu and fp32):
        why = "by --engine torch" if setting == "torch" else f"on {placement.device.type} at {placement.precision}"
        return *predict_logits(model, loader, to_input, placement), f"torch, {why}"
    from .features import choose_engine

    model.eval()
    engine, note = None, "no images"
    outs, labels = [], []
    for images, y in loader:
        if engine is None:
            engine, note = choose_engine("onnxruntime", model, to_input, None, placement.device,
                                         images[:PARITY_IMAGES], mean, std, label)
        outs.append(engine(images).float())
        labels.append(y)
    if not outs:
        return torch.zeros(0, 0), torch.zeros(0, dtype=torch.long), note
    return torch.cat(outs), torch.cat(labels), note
