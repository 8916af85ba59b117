"""The engines that run a whole model over an evaluation set: ``tlf evaluate --engine``, and
the validation pass of a run without a feature cache (:class:`ValidationEngine`).

On the CPU at fp32, ``auto`` runs the model through onnxruntime, the frozen pass's engine
(:func:`tlf.features.cache.choose_engine`): exported once per weights and input size,
cached under ``$TLF_HOME/frozen-onnx`` (the next evaluation of the same checkpoint reuses
it), parity-gated against torch on the first batch, torch again with the reason when the
model does not export or disagrees. Elsewhere (a GPU, bf16) torch runs it. Measured in
docs/performance.md ("Evaluation through onnxruntime").
"""
from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Callable, Iterable, Sequence

import torch
from torch import nn

from ..errors import TlfError
from .placement import Placement

ENGINES = ("auto", "torch", "onnxruntime")
PARITY_IMAGES = 8  # images of the first batch the export is checked on
# a torch validation pass shorter than this is never worth an export: Lite0's export and
# session at 224 px took 3.1-3.4 s (docs/performance.md, "Uncached evaluation through onnxruntime")
EXPORT_SECONDS = 3.0


def evaluation_logits(setting: str, model: nn.Module, loader: Iterable, to_input: Callable, placement: Placement,
                      mean: Sequence[float], std: Sequence[float],
                      label: str) -> tuple[torch.Tensor, torch.Tensor, str]:
    """Float logits and labels (CPU) of every batch of ``loader`` (uint8 images), and a note on
    the engine that computed them; ``label`` names the cached export."""
    on_cpu, fp32 = placement.device.type == "cpu", placement.amp_dtype is None
    if setting == "onnxruntime" and not (on_cpu and fp32):
        raise TlfError(f"--engine onnxruntime runs on the CPU at fp32, but this evaluation is on "
                       f"{placement.device.type} at {placement.precision}",
                       hint="use --engine auto or torch, or --device cpu --precision fp32")
    if setting == "torch" or not (on_cpu and fp32):
        why = "by --engine torch" if setting == "torch" else f"on {placement.device.type} at {placement.precision}"
        return *predict_logits(model, loader, to_input, placement), f"torch, {why}"
    from ..features.cache import choose_engine

    model.eval()
    notes = ["no images"]

    def build(sample: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
        engine, notes[0] = choose_engine("onnxruntime", model, to_input, None, placement.device, sample,
                                         mean, std, label, what="the model")
        return engine

    return *engine_pass(loader, build), notes[0]


def predict_logits(model: nn.Module, loader: Iterable, to_input: Callable,
                   placement: Placement) -> tuple[torch.Tensor, torch.Tensor]:
    """Float logits and labels (on the CPU) of every batch of ``loader``."""
    model.eval()
    amp = placement.amp_dtype
    outs, labels = [], []
    with torch.inference_mode(), torch.autocast(placement.device.type, dtype=amp or torch.float32, enabled=amp is not None):
        for images, y in loader:
            outs.append(model(to_input(images)).float())
            labels.append(y)
    if not outs:
        return torch.zeros(0, 0), torch.zeros(0, dtype=torch.long)
    return torch.cat(outs).cpu(), torch.cat(labels).cpu()


def engine_pass(loader: Iterable,
                build: Callable[[torch.Tensor], Callable | None]) -> tuple[torch.Tensor, torch.Tensor] | None:
    """Float logits and labels of every batch of ``loader`` through the engine ``build`` makes
    from the first batch's :data:`PARITY_IMAGES` images (so the images are read once); None
    when ``build`` returns None."""
    engine = None
    outs, labels = [], []
    for images, y in loader:
        if engine is None:
            engine = build(images[:PARITY_IMAGES])
            if engine is None:
                return None
        outs.append(engine(images).float())
        labels.append(y)
    if not outs:
        return torch.zeros(0, 0), torch.zeros(0, dtype=torch.long)
    return torch.cat(outs), torch.cat(labels)


class ValidationEngine:
    """What runs the validation pass of a run that has no feature cache (``init``, ``scratch``):
    the whole model, every epoch, with new weights each time.

    ``--frozen-engine`` (``setting``) governs it as it does the frozen pass, on the CPU at fp32
    outside torch.distributed (elsewhere torch runs it): ``torch`` keeps torch; ``onnxruntime``
    and ``onnxruntime-int8`` (whose int8 is for frozen features only) export the model before
    each pass into a temporary file (never the cache: the weights are the epoch's), check it
    against torch on the first batch and run the pass through onnxruntime; ``auto`` measures:
    the first pass runs in torch; when it took longer than an export costs (:data:`EXPORT_SECONDS`)
    the second runs in onnxruntime with its export, and every later pass on whichever took
    less (a small validation set does not repay the export). A model
    that does not export or disagrees is validated by torch from then on. ``report`` (a
    callable taking one line) hears the choice once it is made, with the figures."""

    def __init__(self, setting: str, placement: Placement, mean: Sequence[float], std: Sequence[float],
                 distributed: bool, report: Callable[[str], None]) -> None:
        self.placement, self.mean, self.std, self.report = placement, mean, std, report
        self.seconds: dict[str, float] = {}  # the first measured pass of each engine
        self.choice: str | None = None
        self.note = "not run yet"
        if setting == "torch":
            self.choice, self.note = "torch", "torch, by --frozen-engine torch"
        elif placement.device.type != "cpu" or placement.amp_dtype is not None or distributed:
            where = "under torch.distributed" if distributed else f"on {placement.device.type} at {placement.precision}"
            self.choice, self.note = "torch", f"torch, {where}"
        elif setting != "auto":
            self.choice, self.note = "onnxruntime", f"onnxruntime, by --frozen-engine {setting}"

    def logits(self, model: nn.Module, loader: Iterable, to_input: Callable) -> tuple[torch.Tensor, torch.Tensor]:
        """Float logits and labels (CPU) of every batch of ``loader`` (uint8 images) under ``model``."""
        engine = self.choice or ("torch" if "torch" not in self.seconds else "onnxruntime")
        start = time.perf_counter()
        out = self._onnxruntime(model, loader, to_input) if engine == "onnxruntime" else None
        if out is not None:
            self.seconds.setdefault("onnxruntime", time.perf_counter() - start)
        else:
            out = predict_logits(model, loader, to_input, self.placement)
            self.seconds.setdefault("torch", time.perf_counter() - start)
            if self.choice is None and self.seconds["torch"] < EXPORT_SECONDS:
                self.choice = "torch"
                self.note = (f"torch (its pass took {self.seconds['torch']:.1f}s, less than an export costs, "
                             f"about {EXPORT_SECONDS:.0f}s)")
            elif self.choice is None:
                self.note = "torch so far (auto times onnxruntime on the next pass)"
        if self.choice is None and len(self.seconds) == 2:
            self._decide()
        return out

    def _decide(self) -> None:
        torch_s, ort_s = self.seconds["torch"], self.seconds["onnxruntime"]
        self.choice = "onnxruntime" if ort_s < torch_s else "torch"
        self.note = (f"{self.choice} (measured on one pass each: torch {torch_s:.1f}s, "
                     f"onnxruntime {ort_s:.1f}s with its export)")
        self.report(f"validation engine: {self.note}")

    def _onnxruntime(self, model: nn.Module, loader: Iterable,
                     to_input: Callable) -> tuple[torch.Tensor, torch.Tensor] | None:
        """The pass through a fresh export of ``model``; None (and torch from then on) when the
        model does not export or its export disagrees with torch on the first batch."""
        from ..features.onnx_prefix import Uint8Prefix, exported_engine

        model.eval()
        with tempfile.TemporaryDirectory(prefix="tlf-validation-") as folder:
            def build(sample: torch.Tensor) -> Callable | None:
                with torch.inference_mode():
                    reference = model(to_input(sample)).float()
                engine, why = exported_engine(Uint8Prefix(model, self.mean, self.std).eval(), sample, reference,
                                              Path(folder) / "model.onnx", torch.get_num_threads(), what="the model")
                if engine is None:
                    self.choice, self.note = "torch", f"torch: {why}"
                    self.report(f"validation engine: {self.note}")
                return engine

            return engine_pass(loader, build)
