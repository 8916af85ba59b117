"""tlf: transfer learning for pretrained vision models.

Importing ``tlf`` (or ``tlf.runtime``) does not import torch: the heavy parts are
loaded on first use, so deployment needs only onnxruntime, numpy and Pillow.
"""
from __future__ import annotations

from importlib import import_module
from typing import Any

from ._version import __version__
from .errors import TlfError

# public name -> module that defines it (imported on first access)
_LAZY = {
    "hookimpl": "tlf.hookspecs",
    "get_registry": "tlf.registry",
    "train": "tlf.engine.api",
    "evaluate": "tlf.insight.evaluate_run",
    "EvaluationSettings": "tlf.insight.evaluate_run",
    "export_run": "tlf.export.run",
    "ExportSettings": "tlf.export.run",
    "RunConfig": "tlf.config",
    "compare": "tlf.experiments",
    "report": "tlf.experiments",
    "tune": "tlf.tuning",
    "keep_freed_memory": "tlf.heap",
}

__all__ = ["__version__", "TlfError", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'tlf' has no attribute {name!r}")
