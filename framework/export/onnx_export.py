"""PyTorch classifier -> ONNX file with tlf metadata, gated on parity with PyTorch."""
from __future__ import annotations

import contextlib
import io
import os
import sys
import tempfile
import time
import warnings
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import onnx
import onnxruntime as ort
import torch
from torch import nn

from .._version import __version__
from ..errors import TlfError
from ..preprocessing import Preprocessing, affine
from ..runtime import REQUIRED_KEYS, encode_metadata
from ..task_outputs import DEFAULT_THRESHOLD, output_of, probabilities
from ..safe_files import publish, remove_stale_temps, scratch_file

EXPORTERS = ("auto", "dynamo", "torchscript")
INPUT_NAME, OUTPUT_NAME = "input", "logits"
# parity tolerance on logits, relative to the logit scale max(1, max |logit|)
TOLERANCE = {"fp32": 1e-4, "fp16": 2e-2}
PARITY_BATCHES = (1, 7)  # batch sizes the exported graph is run at


class Preprocessed(nn.Module):
    """``model`` behind uint8 RGB NCHW input: cast, /255 and normalize inside the graph."""

    def __init__(self, model: nn.Module, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        self.model = model
        offset, scale = affine(mean, std)
        self.register_buffer("offset", torch.tensor(offset, dtype=torch.float32).view(1, 3, 1, 1))
        self.register_buffer("scale", torch.tensor(scale, dtype=torch.float32).view(1, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model((x.float() - self.offset) * self.scale)


@dataclass
class Parity:
    """onnxruntime vs PyTorch (fp32) logits on the same images."""

    images: int
    inputs: str  # "validation" images or "random" noise
    batch_sizes: list[int]
    max_abs_diff: float
    logit_scale: float  # max(1, max |PyTorch logit|)
    tolerance: float  # allowed max_abs_diff (relative tolerance x logit scale)
    top1_agreement: float  # multi-label: the share of images given the same label set
    decisive_disagreements: int  # top-1 differs although PyTorch's top-2 margin exceeds 2 x tolerance
    # (multi-label: a class in one set and not the other although PyTorch's logit is over 2 x tolerance from its threshold's)
    max_prob_diff: float  # the task's probabilities: softmax, or multi-label's sigmoid per class
    output: str = "softmax"  # what the agreement compares (tlf.task_outputs.OUTPUTS): top-1, or label sets

    @property
    def ok(self) -> bool:
        return self.max_abs_diff <= self.tolerance and self.decisive_disagreements == 0

    def describe(self) -> str:
        return (f"max |logit diff| {self.max_abs_diff:.3g} (tolerance {self.tolerance:.3g} = "
                f"{self.tolerance / self.logit_scale:.0e} x logit scale {self.logit_scale:.3g}), "
                f"{'label-set' if self.output == 'sigmoid' else 'top-1'} agreement {self.top1_agreement:.2%} on {self.images} {self.inputs} images, "
                f"max |prob diff| {self.max_prob_diff:.3g}")


@dataclass
class Attempt:
    exporter: str
    ok: bool
    reason: str  # why it was rejected, or "" when used
    seconds: float


@dataclass
class ExportReport:
    """What :func:`export_onnx` produced and how it was checked."""

    path: str
    exporter: str
    attempts: list[Attempt]
    opset: int
    precision: str
    preprocessing_in_graph: bool
    parity: Parity
    size_bytes: int
    metadata: dict[str, Any]
    seconds: float
    quantization: Any = None  # QuantizationReport when --quantize was asked
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["parity"]["ok"] = self.parity.ok
        if self.quantization is not None:
            out["quantization"] = self.quantization.to_dict()
        return out


def _opset(model: onnx.ModelProto) -> int:
    return next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))


class ExportFailed(RuntimeError):
    """torch.onnx.export raised; the message is the original error's first line."""


@contextlib.contextmanager
def _silenced() -> Iterator[None]:
    """Swallow output to the process's stdout/stderr, including C++ prints (the TorchScript
    exporter logs the whole graph when it fails), and Python warnings."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    with tempfile.TemporaryFile() as sink, warnings.catch_warnings(), \
            contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        warnings.simplefilter("ignore")
        os.dup2(sink.fileno(), 1)
        os.dup2(sink.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)


def _export(net: nn.Module, example: torch.Tensor, path: Path, exporter: str, opset: int | None) -> None:
    """One torch.onnx.export call, its console output swallowed; failures become :class:`ExportFailed`."""
    kwargs: dict[str, Any] = dict(input_names=[INPUT_NAME], output_names=[OUTPUT_NAME], opset_version=opset)
    if exporter == "dynamo":
        kwargs.update(dynamo=True, external_data=False, verbose=False,
                      dynamic_shapes=({0: torch.export.Dim("batch")},))
    else:
        kwargs.update(dynamo=False, dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}})
    try:
        with _silenced():
            torch.onnx.export(net, (example,), str(path), **kwargs)
    except Exception as exc:
        raise ExportFailed(_one_line(exc)) from exc


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0]}" if text else type(exc).__name__


def _to_fp16(model: onnx.ModelProto) -> onnx.ModelProto:
    """Weights and activations in float16, inputs/outputs kept float32 (onnxruntime's converter)."""
    from onnxruntime.transformers.float16 import convert_float_to_float16
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = convert_float_to_float16(model, keep_io_types=True)
    _topological_sort(model.graph)  # the converter appends its input casts at the end
    return model


def _topological_sort(graph: onnx.GraphProto) -> None:
    """Reorder ``graph.node`` so every node comes after its producers (stable otherwise)."""
    known = {i.name for i in graph.input} | {i.name for i in graph.initializer} | {""}
    pending, ordered = list(graph.node), []
    while pending:
        waiting = []
        for node in pending:
            if all(i in known for i in node.input):
                ordered.append(node)
                known.update(node.output)
            else:
                waiting.append(node)
        if len(waiting) == len(pending):
            raise RuntimeError("graph has a cycle or an undefined input")
        pending = waiting
    del graph.node[:]
    graph.node.extend(ordered)


def session(path: str | Path, threads: int | None = None) -> ort.InferenceSession:
    """A CPU onnxruntime session (parity and accuracy checks run on CPU)."""
    options = ort.SessionOptions()
    options.log_severity_level = 3
    if threads:
        options.intra_op_num_threads = threads
    return ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])


def run_batches(sess: ort.InferenceSession, inputs: np.ndarray, batch_size: int) -> np.ndarray:
    """Logits of ``inputs`` computed ``batch_size`` at a time."""
    name = sess.get_inputs()[0].name
    return np.concatenate([sess.run(None, {name: inputs[i:i + batch_size]})[0]
                           for i in range(0, len(inputs), batch_size)])


def check_parity(path: Path, reference: np.ndarray, inputs: np.ndarray, precision: str, source: str,
                 output: str = "softmax", thresholds: Sequence[float] | None = None) -> Parity:
    """Run the ONNX file at batch sizes 1 and 7 and compare with PyTorch's logits: the top class, or
    for ``sigmoid`` outputs the label sets at ``thresholds`` (probabilities, one per class)."""
    sess = session(path)
    single = run_batches(sess, inputs[:1], 1)
    batched = run_batches(sess, inputs, PARITY_BATCHES[1])
    diff = max(float(np.abs(single - reference[:1]).max()), float(np.abs(batched - reference).max()))
    scale = max(1.0, float(np.abs(reference).max()))
    tolerance = TOLERANCE[precision] * scale
    prob_diff = float(np.abs(probabilities(output, batched) - probabilities(output, reference)).max())
    if output == "sigmoid":
        agree, decisive = _set_agreement(batched, reference, thresholds, tolerance)
        return Parity(len(inputs), source, list(PARITY_BATCHES), diff, scale, tolerance, agree, decisive, prob_diff, output)
    ref_top = np.argsort(-reference, axis=1)
    agree = batched.argmax(1) == ref_top[:, 0]
    if reference.shape[1] > 1:
        margin = np.take_along_axis(reference, ref_top[:, :1], 1)[:, 0] - np.take_along_axis(reference, ref_top[:, 1:2], 1)[:, 0]
    else:
        margin = np.full(len(reference), np.inf)
    decisive = int(np.sum(~agree & (margin > 2 * tolerance)))
    return Parity(len(inputs), source, list(PARITY_BATCHES), diff, scale, tolerance, float(agree.mean()), decisive, prob_diff)


def _set_agreement(logits: np.ndarray, reference: np.ndarray, thresholds: Sequence[float] | None,
                   tolerance: float) -> tuple[float, int]:
    """The share of images with the same label set, and the set memberships that differ although
    PyTorch's logit is more than 2 x ``tolerance`` from the threshold's logit."""
    p = np.clip(np.asarray(thresholds if thresholds is not None else DEFAULT_THRESHOLD, dtype=np.float64), 1e-12,
                1 - 1e-12)
    cut = np.log(p / (1 - p))  # the thresholds as logits
    ours, theirs = logits >= cut, reference >= cut
    decisive = int(np.sum((ours != theirs) & (np.abs(reference - cut) > 2 * tolerance)))
    return float((ours == theirs).all(axis=1).mean()), decisive


def export_onnx(model: nn.Module, path: str | Path, *, image_size: int, metadata: dict[str, Any],
                opset: int | None = None, exporter: str = "auto", fp16: bool = False,
                include_preprocessing: bool = False, sample_images: np.ndarray | None = None) -> ExportReport:
    """Export ``model`` (float NCHW normalized in, logits out) to ``path`` with a dynamic batch axis.

    ``metadata`` holds the ``tlf.*`` entries (see :data:`tlf.runtime.METADATA_KEYS`); at
    least classes, resize, crop, mean, std and interpolation. ``sample_images`` (uint8
    N x 3 x S x S, already resized and cropped: real validation images) are used for the
    parity gate; without them random noise is used, and the report says so.

    ``exporter``: "dynamo" (``torch.onnx.export(dynamo=True)``), "torchscript", or
    "auto": dynamo first, then TorchScript when dynamo fails or disagrees with PyTorch.
    The written file passes ``onnx.checker`` and matches PyTorch within
    :data:`TOLERANCE`; otherwise :class:`TlfError` shows the figures and nothing is written.

    The steps: check the arguments, fix the preprocessing, pick the parity images, build the
    metadata, move the model to the CPU in fp32 (restored afterwards), compute PyTorch's
    reference logits, then try each exporter in turn (:func:`_attempt`) until one passes,
    writing its file atomically.
    """
    start = time.perf_counter()
    path = Path(path)
    _check_arguments(exporter, metadata)
    preprocessing = Preprocessing.from_metadata({**metadata, "crop": image_size}, source="export")
    preprocessing.check_runtime("export")
    precision = "fp16" if fp16 else "fp32"
    images, source, notes = _parity_images(sample_images, image_size)
    meta = {**metadata, **preprocessing.to_metadata(),
            "preprocessing_in_graph": include_preprocessing, "version": __version__, "precision": precision}
    float_inputs = preprocessing.normalize(images)
    inputs = images if include_preprocessing else float_inputs
    with _on_cpu_fp32(model):
        with torch.inference_mode():
            reference = model(torch.from_numpy(float_inputs)).float().numpy()
        net = Preprocessed(model, meta["mean"], meta["std"]).eval() if include_preprocessing else model
        gate = partial(check_parity, reference=reference, inputs=inputs, precision=precision, source=source,
                       output=output_of(meta, str(path)), thresholds=meta.get("thresholds"))
        attempts, passed = _write_first_passing(net, _example(inputs), path, exporter, opset, fp16, meta, gate)
    if passed is None:
        raise TlfError("ONNX export failed (export, onnx.checker and the parity gate must all pass): "
                       + "; ".join(f"{a.exporter}: {a.reason}" for a in attempts),
                       hint="try another --exporter or --opset; parity figures compare onnxruntime with PyTorch logits")
    proto, parity = passed
    return ExportReport(str(path), attempts[-1].exporter, attempts, _opset(proto), precision, include_preprocessing,
                        parity, path.stat().st_size, meta, time.perf_counter() - start, notes=notes)


def _check_arguments(exporter: str, metadata: dict[str, Any]) -> None:
    """A known exporter, and the metadata entries the preprocessing is built from."""
    if exporter not in EXPORTERS:
        raise TlfError(f"unknown exporter {exporter!r}", hint=f"use one of {', '.join(EXPORTERS)}")
    missing = [k for k in REQUIRED_KEYS if k not in metadata and k not in ("crop", "preprocessing_in_graph")]
    if missing:
        raise ValueError(f"metadata lacks {missing}")


def _parity_images(sample_images: np.ndarray | None, image_size: int) -> tuple[np.ndarray, str, list[str]]:
    """The uint8 images the parity gate runs on, what they are ("validation" or "random") and notes."""
    if sample_images is None:
        noise = np.random.default_rng(0).integers(0, 256, (16, 3, image_size, image_size), dtype=np.uint8)
        return noise, "random", ["parity checked on random noise: no validation images were given"]
    if sample_images.dtype != np.uint8 or sample_images.shape[1:] != (3, image_size, image_size):
        raise ValueError(f"sample_images must be uint8 N x 3 x {image_size} x {image_size}, got "
                         f"{sample_images.shape} {sample_images.dtype}")
    return sample_images, "validation", []


@contextlib.contextmanager
def _on_cpu_fp32(model: nn.Module) -> Iterator[None]:
    """``model`` in eval mode, on the CPU in float32, for the block; its device, dtype and mode back after."""
    was_training = model.training
    first = next(model.parameters())
    device, dtype = first.device, first.dtype
    model.eval().to("cpu", torch.float32)
    try:
        yield
    finally:
        model.to(device, dtype).train(was_training)


def _example(inputs: np.ndarray) -> torch.Tensor:
    """The tracing input: two images, so the batch axis is not specialised to 1."""
    return torch.from_numpy(inputs[:2] if len(inputs) >= 2 else np.repeat(inputs, 2, axis=0))


def _write_first_passing(net: nn.Module, example: torch.Tensor, path: Path, exporter: str, opset: int | None,
                         fp16: bool, meta: dict[str, Any], gate: Callable[[Path], Parity],
                         ) -> tuple[list[Attempt], tuple[onnx.ModelProto, Parity] | None]:
    """Try the exporters ``exporter`` stands for, in order, on a temporary file; the first that
    passes is renamed to ``path``. Every attempt, and (its model, its parity) or None."""
    attempts: list[Attempt] = []
    remove_stale_temps(path.parent)  # left beside earlier exports by killed processes
    with scratch_file(path) as tmp:
        for name in ["dynamo", "torchscript"] if exporter == "auto" else [exporter]:
            attempt, proto, parity = _attempt(net, example, tmp, name, opset, fp16, meta, gate)
            attempts.append(attempt)
            if attempt.ok:
                publish(tmp, path)
                return attempts, (proto, parity)
    return attempts, None


def _attempt(net: nn.Module, example: torch.Tensor, tmp: Path, exporter: str, opset: int | None, fp16: bool,
             meta: dict[str, Any], gate: Callable[[Path], Parity],
             ) -> tuple[Attempt, onnx.ModelProto | None, Parity | None]:
    """One exporter: convert to ``tmp``, stamp the metadata, run the parity gate."""
    t0 = time.perf_counter()
    try:
        proto = _convert(net, example, tmp, exporter, opset, fp16)
    except Exception as exc:  # an exporter bug or unsupported op: the caller tries the next one
        reason = str(exc) if isinstance(exc, ExportFailed) else _one_line(exc)
        return Attempt(exporter, False, f"export failed: {reason}", time.perf_counter() - t0), None, None
    _stamp(proto, meta)
    onnx.save(proto, str(tmp))
    parity = gate(tmp)
    reason = "" if parity.ok else f"disagrees with PyTorch: {parity.describe()}"
    return Attempt(exporter, parity.ok, reason, time.perf_counter() - t0), proto, parity


def _convert(net: nn.Module, example: torch.Tensor, tmp: Path, exporter: str, opset: int | None,
             fp16: bool) -> onnx.ModelProto:
    """Trace ``net`` to ``tmp`` and load it, checked by ``onnx.checker`` (in float16 if ``fp16``)."""
    _export(net, example, tmp, exporter, opset)
    proto = onnx.load(str(tmp))
    onnx.checker.check_model(proto, full_check=True)
    if fp16:
        proto = _to_fp16(proto)
        onnx.checker.check_model(proto)
    return proto


def _stamp(proto: onnx.ModelProto, meta: dict[str, Any]) -> None:
    """The ``tlf.*`` metadata (beside what the exporter wrote) and a doc string, in place."""
    onnx.helper.set_model_props(proto, {**{p.key: p.value for p in proto.metadata_props}, **encode_metadata(meta)})
    proto.doc_string = f"tlf {__version__} export of {meta.get('backbone', 'a classifier')}"
