"""``tlf audit``: label errors, duplicates, train/validation leaks, outliers and image checks,
from one frozen pass over a dataset (shared with ``transfer`` runs through the feature store).

``tlf.audit.audit(dataset="flowers", data_dir=...)`` returns the folder it wrote; the modules:
``embeddings`` (the features), ``duplicates``, ``labels``, ``checks``, ``findings`` (what is
reported), ``page`` (audit.html), ``run`` (the whole audit and its files).
"""
from __future__ import annotations

from typing import Any


def audit(*args: Any, **kwargs: Any):
    """:func:`tlf.audit.run.audit` (imported on first use: torch stays unimported until then)."""
    from .run import audit as run_audit
    return run_audit(*args, **kwargs)


__all__ = ["audit"]
