"""The run directory: everything a run writes, each file written atomically.

```
runs/<dataset>-<backbone>-<policy>-<UTC timestamp>/
  config.yaml preprocessing.json classes.json metrics.jsonl metrics.csv last.pt best.pt curves.png summary.json
```
"""
from __future__ import annotations

import csv
import io
import json
import os
import re
import tempfile
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from .config import RunConfig
from .errors import TlfError
from .preprocessing import Preprocessing

CHECKPOINTS = ("best", "last")
PREPROCESSING_FILE = "preprocessing.json"  # the run's tlf.preprocessing.Preprocessing


def atomic_write(path: Path, write: Callable[[Any], None], mode: str = "w") -> None:
    """Write through ``write(file)`` into a temp file beside ``path``, then rename it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.]+", "_", text).strip("_")[:60] or "run"


class RunDir:
    """A run directory being written."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    @classmethod
    def create(cls, out: str | Path, dataset: str, backbone: str, policy: str, name: str | None = None) -> RunDir:
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        base = Path(out) / (name or "-".join(_slug(p) for p in (dataset, backbone, policy, stamp)))
        path, n = base, 1
        while path.exists():
            if name:
                raise TlfError(f"run directory {path} already exists",
                               hint=f"resume it with --resume {path}, or choose another --name")
            n += 1
            path = base.with_name(f"{base.name}-{n}")
        path.mkdir(parents=True)
        return cls(path)

    def remove_partial_files(self) -> list[Path]:
        """Delete temp files an interrupted write left behind (the real files are intact)."""
        stale = list(self.path.glob(".*.tmp"))
        for path in stale:
            path.unlink(missing_ok=True)
        return stale

    def write_text(self, name: str, text: str) -> None:
        atomic_write(self.path / name, lambda f: f.write(text))

    def write_json(self, name: str, obj: Any) -> None:
        self.write_text(name, json.dumps(obj, indent=2) + "\n")

    def write_yaml(self, name: str, obj: Any) -> None:
        import yaml
        self.write_text(name, yaml.safe_dump(obj, sort_keys=False))

    def write_metrics(self, rows: list[dict]) -> None:
        """metrics.jsonl and metrics.csv, rewritten whole from the checkpointed history."""
        self.write_text("metrics.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
        buf = io.StringIO()
        if rows:
            columns = list(dict.fromkeys(k for r in rows for k in r))
            writer = csv.DictWriter(buf, fieldnames=columns)
            writer.writeheader()
            writer.writerows(rows)
        self.write_text("metrics.csv", buf.getvalue())

    def save_checkpoint(self, name: str, state: dict) -> None:
        import torch
        atomic_write(self.path / f"{name}.pt", lambda f: torch.save(state, f), mode="wb")


def read_json(path: Path) -> Any:
    return json.loads(Path(path).read_text())


def load_checkpoint(run_dir: str | Path, which: str = "last", map_location: str = "cpu") -> dict:
    """A checkpoint of a run, loaded with ``weights_only=True``."""
    import torch
    path = Path(run_dir) / f"{which}.pt"
    if not path.is_file():
        raise TlfError(f"{path} does not exist", hint=f"is {run_dir} a tlf run directory that finished an epoch?")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:
        raise TlfError(f"cannot load checkpoint {path}: {type(exc).__name__}: {exc}",
                       hint="the file is damaged; use the other checkpoint (best/last)") from None


def read_run_config(run_dir: str | Path) -> RunConfig:
    """The plan a run was started with (its config.yaml), typed and checked."""
    path = Path(run_dir) / "config.yaml"
    if not path.is_file():
        raise TlfError(f"{run_dir} is not a tlf run directory (no config.yaml)",
                       hint="pass a folder made by 'tlf train' (the last line it prints names it)")
    import yaml
    try:
        data = yaml.safe_load(path.read_text())
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise TlfError(f"{path} is not valid YAML: {str(exc).splitlines()[0]}",
                       hint="restore the file from the run's checkpoint ('config' key) or start a new run") from None
    if not isinstance(data, dict):
        raise TlfError(f"{path} must hold a mapping of settings, not {type(data).__name__}",
                       hint="restore the file from the run's checkpoint ('config' key) or start a new run")
    return RunConfig.from_dict(data, source=str(path)).checked()


@dataclass
class LoadedRun:
    """A finished (or interrupted) run, ready for evaluation or export."""

    directory: Path
    config: RunConfig  # the run's plan
    classes: list[str]
    model: Any  # tlf.models.Classifier in eval mode
    meta: Any  # tlf.models.BackboneMeta
    preprocessing: Preprocessing
    summary: dict
    checkpoint: str


def load_run(run_dir: str | Path, which: str = "best") -> LoadedRun:
    """Rebuild a run's model with its ``best`` (or ``last``) weights, on the CPU, in eval mode."""
    from .models import build_model
    run_dir = Path(run_dir)
    config = read_run_config(run_dir)
    state = load_checkpoint(run_dir, which)
    classes = list(state["classes"])
    model = build_model(config.backbone, len(classes), pretrained=False, head=config.head,
                        dropout=config.dropout, input_size=config.image_size)
    model.load_state_dict(state["model"])
    model.eval()
    summary_path = run_dir / "summary.json"
    summary = read_json(summary_path) if summary_path.is_file() else {}
    meta = model.backbone.meta
    return LoadedRun(run_dir, config, classes, model, meta, read_preprocessing(run_dir, meta, config.image_size),
                     summary, which)


def read_preprocessing(run_dir: Path, meta: Any, image_size: int | None) -> Preprocessing:
    """The run's preprocessing.json; runs made before it existed: from the backbone's meta."""
    path = Path(run_dir) / PREPROCESSING_FILE
    if not path.is_file():
        return Preprocessing.from_meta(meta, image_size)
    try:
        return Preprocessing.from_dict(read_json(path), source=str(path))
    except ValueError as exc:
        raise TlfError(f"{path} is damaged: {exc}", hint="delete it; tlf then derives it from the backbone") from None
