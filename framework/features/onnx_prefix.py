"""The frozen prefix as an onnxruntime session on the CPU: exported once, cached on disk,
checked against torch on a real batch before it is used.

Hand-written because no library caches exports by their weights: the cache key is a hash
of the prefix's architecture, weights, normalization and input size, so a run whose
weights differ never reads another run's file. The export itself is ``torch.onnx.export``
(through :func:`tlf.export.onnx_export._export`, the one ``tlf export`` uses).
"""
from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path
from typing import Sequence

import numpy as np
import onnxruntime as ort
import torch
from torch import nn

from ..errors import first_line
from ..paths import cache_dir
from ..preprocessing import affine
from ..safe_files import publish, scratch_file

# parity gate: max |feature diff| <= TOLERANCE x max(1, max |torch feature|), as tlf export's fp32 gate
TOLERANCE = 1e-4
FORMAT = 1  # bump when the exported graph's contract (input layout, normalization) changes
# disk the cached exports may take: a few dozen Lite0 prefixes (9-14 MB) or ten ResNet-50s (~100 MB)
CACHE_BYTES = 1 << 30


class Uint8Prefix(nn.Module):
    """``prefix`` behind the loaders' uint8 NHWC batches: permute, float, normalize in the graph
    (so the session reads the batch's memory as is, and no float copy is made outside it)."""

    def __init__(self, prefix: nn.Module, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        self.prefix = prefix
        offset, scale = affine(mean, std)
        self.register_buffer("mean", torch.tensor(offset).view(1, 3, 1, 1))
        self.register_buffer("scale", torch.tensor(scale).view(1, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.prefix((x.permute(0, 3, 1, 2).float() - self.mean) * self.scale)


def fingerprint(prefix: nn.Module, height: int, width: int, mean: Sequence[float], std: Sequence[float]) -> str:
    """Hash of everything the exported graph depends on: its modules, weights and buffers,
    normalization, input size, and the torch/onnxruntime versions."""
    digest = hashlib.sha256()
    digest.update(f"{FORMAT}|{torch.__version__}|{ort.__version__}|{height}x{width}|{list(mean)}|{list(std)}|"
                  f"{prefix!r}".encode())
    for name, tensor in prefix.state_dict().items():
        t = tensor.detach().cpu().contiguous().reshape(-1)
        digest.update(f"{name}|{t.dtype}|{tuple(tensor.shape)}".encode())
        digest.update(t.view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()[:24]


def cached_path(label: str, key: str) -> Path:
    """Where the export of a prefix with fingerprint ``key`` lives (``$TLF_HOME/frozen-onnx``)."""
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", label)[:60]
    return cache_dir("frozen-onnx") / f"{safe}-{key}.onnx"


def export(prefix: nn.Module, example: torch.Tensor, path: Path) -> None:
    """Export ``Uint8Prefix`` ``prefix`` (example: uint8 NHWC) to ``path`` with a dynamic batch axis,
    written to a temporary name and renamed into place; raises ``ExportFailed``."""
    from ..export.onnx_export import _export

    with scratch_file(path) as tmp:  # a private folder: no link planted in the cache is written through
        errors = []
        for exporter in ("torchscript", "dynamo"):  # TorchScript exports a conv prefix several times faster
            try:
                _export(prefix, example, tmp, exporter, None)
                break
            except Exception as exc:  # an unsupported op: try the other exporter, then give up
                errors.append(f"{exporter}: {exc}")
        else:
            raise RuntimeError(errors[0] + "; dynamo failed too")
        publish(tmp, path)


def open_session(path: Path, threads: int) -> ort.InferenceSession:
    """A CPU session with ``threads`` intra-op threads, sequential execution and every graph
    optimisation: the fastest of benchmarks/frozen_pass.py's sweep (docs/performance.md; parallel
    execution and ORT_ENABLE_BASIC were slower, one thread slower than one per core)."""
    options = ort.SessionOptions()
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.log_severity_level = 4  # errors reach the run as the note of choose_engine
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])


class OnnxPrefix:
    """Runs uint8 loader batches (N x 3 x H x W, NHWC in memory) through the exported prefix;
    ``channels_last`` returns features in that memory format, as torch's pass would."""

    def __init__(self, session: ort.InferenceSession, path: Path, channels_last: bool = False,
                 name: str = "onnxruntime") -> None:
        self.name = name
        self.session = session
        self.path = path
        self.input_name = session.get_inputs()[0].name
        self.layout = torch.channels_last if channels_last else torch.contiguous_format

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        nhwc = np.ascontiguousarray(images.permute(0, 2, 3, 1).numpy())  # no copy for channels_last batches
        out = torch.from_numpy(self.session.run(None, {self.input_name: nhwc})[0])
        return out.contiguous(memory_format=self.layout) if out.dim() == 4 else out


def parity(engine: OnnxPrefix, reference: torch.Tensor, sample: torch.Tensor) -> tuple[bool, str]:
    """Whether ``engine`` reproduces torch's fp32 ``reference`` features of ``sample`` within
    :data:`TOLERANCE`, and the figures."""
    got = engine(sample).float()
    if got.shape != reference.shape:
        return False, f"output shape {tuple(got.shape)} instead of {tuple(reference.shape)}"
    scale = max(1.0, float(reference.abs().max()))
    diff = float((got - reference).abs().max())
    ok = diff <= TOLERANCE * scale  # NaN fails
    return ok, f"max |feature diff| {diff:.3g} (tolerance {TOLERANCE:.0e} x feature scale {scale:.3g})"


def onnx_prefix(prefix: nn.Module, sample: torch.Tensor, reference: torch.Tensor, mean: Sequence[float],
                std: Sequence[float], label: str, threads: int, channels_last: bool = False,
                what: str = "the frozen prefix") -> tuple[OnnxPrefix | None, str]:
    """An onnxruntime engine for ``prefix`` that passed the parity gate on ``sample`` (uint8
    N x 3 x H x W) against ``reference`` (torch's fp32 features of it), and a note saying what was
    done; ``(None, why)`` when the prefix does not export or does not match (``what`` names it
    in that note).

    A cached file is reused only when its fingerprint matches and it passes the gate; a cached
    file that does not load or does not match is exported again. Files are used and written
    with a fresh modification time, and the cache keeps the most recently used ones within
    :data:`CACHE_BYTES` (:func:`prune`)."""
    wrapped = Uint8Prefix(prefix, mean, std).eval()
    height, width = sample.shape[2:]
    path = cached_path(label, fingerprint(wrapped, height, width, mean, std))
    note = "reused the cached export"
    if path.is_file():
        try:
            engine = OnnxPrefix(open_session(path, threads), path, channels_last)
            ok, figures = parity(engine, reference, sample)
        except Exception as exc:  # a truncated or corrupted file: onnxruntime's own error types
            ok, figures = False, f"{type(exc).__name__}"
        if ok:
            os.utime(path)
            return engine, f"{note}, parity {figures}"
        note = f"re-exported (the cached file failed: {figures.splitlines()[0] if figures else 'unreadable'})"
    else:
        note = "exported once for this backbone and weights"
    engine, figures = exported_engine(wrapped, sample, reference, path, threads, channels_last, what)
    if engine is None:
        return None, figures
    prune(path.parent, keep=path)
    return engine, f"{note}, parity {figures}"


def exported_engine(wrapped: Uint8Prefix, sample: torch.Tensor, reference: torch.Tensor, path: Path, threads: int,
                    channels_last: bool = False, what: str = "the frozen prefix") -> tuple[OnnxPrefix | None, str]:
    """Export ``wrapped`` to ``path`` and check it against ``reference`` on ``sample``: the engine
    and the parity figures, or ``(None, why)`` (a file that fails the gate is deleted)."""
    try:
        with torch.inference_mode(False), torch.no_grad():
            export(wrapped, sample[:2].permute(0, 2, 3, 1).contiguous(), path)
        engine = OnnxPrefix(open_session(path, threads), path, channels_last)
        ok, figures = parity(engine, reference, sample)
    except Exception as exc:
        return None, f"{what} does not export to ONNX ({first_line(exc)})"
    if not ok:
        path.unlink(missing_ok=True)
        return None, f"the export of {what} disagrees with torch: {figures}"
    return engine, figures


def prune(folder: Path, keep: Path, budget: int | None = None, pattern: str = "*.onnx") -> list[Path]:
    """Delete the least recently used ``pattern`` files of ``folder`` until the rest fit in
    ``budget`` bytes (default :data:`CACHE_BYTES`); ``keep`` always stays. The deleted paths."""
    budget = CACHE_BYTES if budget is None else budget
    files = []
    for path in folder.glob(pattern):
        try:
            stat = path.stat()
        except OSError:  # deleted by another run meanwhile
            continue
        files.append((path == keep, stat.st_mtime, stat.st_size, path))
    files.sort(reverse=True)  # keep first, then newest first
    total, deleted = 0, []
    for kept, _, size, path in files:
        total += size
        if total > budget and not kept:
            path.unlink(missing_ok=True)
            deleted.append(path)
    return deleted
