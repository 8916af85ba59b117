"""The ``jsonl`` logger: one JSON object per event, appended to a file.

The smallest useful tracker, and the pattern for wiring tlf to any other one: subclass
:class:`tlf.tracking.Logger`, write what each call gets.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tlf.tracking import Logger, LoggerRequest


class JsonlLogger(Logger):
    """Appends ``{"event": "start" | "step" | "epoch" | "end", ...}`` lines to ``path``."""

    def __init__(self, request: LoggerRequest, path: str | None) -> None:
        self.path = Path(path) if path else request.run_dir / "events.jsonl"
        self._write({"event": "start", "run_dir": str(request.run_dir), "resumed": request.resumed,
                     "step": request.step, "config": request.config})

    def _write(self, record: dict[str, Any]) -> None:
        with self.path.open("a") as f:
            f.write(json.dumps(record, default=str) + "\n")

    def log_step(self, step: int, metrics: dict[str, float]) -> None:
        self._write({"event": "step", "step": step, **metrics})

    def log_epoch(self, step: int, row: dict[str, Any]) -> None:
        self._write({"event": "epoch", "step": step, **row})

    def finish(self, summary: dict[str, Any] | None, status: str) -> None:
        self._write({"event": "end", "status": status, "summary": summary})
