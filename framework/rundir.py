"""The run directory: everything a run writes, each file written atomically.

```
runs/<dataset>-<backbone>-<policy>-<UTC timestamp>/
  config.yaml preprocessing.json classes.json metrics.jsonl metrics.csv last.pt best.pt curves.png summary.json
  .lock   held (filelock: flock on POSIX) by the process training the run
```

A run directory appears complete: it is filled under a hidden temp name and renamed into place,
so it never exists without its ``config.yaml``. A write that fails (disk full, file too large,
permission) leaves the previous file intact and is a :class:`TlfError` naming the file, the cause
and the fix.
"""
from __future__ import annotations

import csv
import errno
import io
import json
import os
import secrets
import shutil
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from . import safe_files
from .config import RunConfig
from .errors import TlfError
from .paths import slug
from .safe_files import atomic_write, write_error

CHECKPOINTS = ("best", "last")  # the checkpoints a run keeps (best.pt, last.pt): --checkpoint's choices
PREPROCESSING_FILE = "preprocessing.json"  # the run's tlf.preprocessing.Preprocessing




class RunDirWriter:
    """A run directory being written."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock: Any = None  # the filelock.FileLock, while this process holds the run

    @classmethod
    def create(cls, out: str | Path, dataset: str, backbone: str, policy: str, name: str | None = None,
               files: dict[str, str] | None = None) -> RunDirWriter:
        """A new run directory under ``out`` holding ``files`` (name -> text) and locked by this
        process. It is filled under a hidden temp name and renamed into place, so it appears
        complete or not at all; a name taken meanwhile (by a concurrent run) moves on to the
        next ``-N`` suffix, or is an error for an explicit ``name``."""
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        base = Path(out) / (name or "-".join(slug(p, empty="run") for p in (dataset, backbone, policy, stamp)))
        try:
            base.parent.mkdir(parents=True, exist_ok=True)
            safe_files.remove_stale_temps(base.parent)  # run folders half-made by killed processes
            staging = base.parent / f"{safe_files.temp_prefix(base.name)}{secrets.token_hex(4)}.tmp"
            staging.mkdir()  # not mkdtemp: its mode 0700 would hide the run from the user's group
        except OSError as exc:
            raise write_error(base, exc) from None
        run_dir = cls(staging)
        try:
            for file_name, text in (files or {}).items():
                run_dir.write_text(file_name, text)
            run_dir.lock()
            n = 1
            while True:
                path = base if n == 1 else base.with_name(f"{base.name}-{n}")
                try:  # atomic: fails on a run (or file) already there; takes over only an empty folder
                    os.rename(staging, path)
                    run_dir.path = path
                    return run_dir
                except OSError as exc:
                    if exc.errno not in (errno.EEXIST, errno.ENOTEMPTY, errno.ENOTDIR):
                        raise write_error(path, exc) from None
                if name:
                    raise TlfError(f"run directory {path} already exists",
                                   hint=f"resume it with --resume {path}, or choose another --name")
                n += 1
        except BaseException:
            run_dir.unlock()
            shutil.rmtree(staging, ignore_errors=True)
            raise

    def lock(self) -> None:
        """Take the run's exclusive lock (``.lock``) until :meth:`unlock` or the process ends.

        A run held by another process is a :class:`TlfError` naming that process; a ``.lock``
        that is a link is refused, never followed."""
        if self._lock is not None:
            return
        try:
            self._lock = safe_files.lock(self.path / ".lock")
        except safe_files.LockHeld as held:
            raise TlfError(f"run {self.path} is being trained by process {held.holder}",
                           hint="wait for it to finish (or stop it), then resume") from None

    def unlock(self) -> None:
        """Release the lock taken by :meth:`lock` (the file stays; only the lock matters)."""
        held, self._lock = self._lock, None
        if held is not None:
            held.release()

    def remove_partial_files(self) -> list[Path]:
        """Delete temp files an interrupted write left behind (the real files are intact): called
        while holding the lock, so every temp file in the run is stale."""
        stale = [p for p in self.path.glob(".*.tmp") if not p.is_dir()]
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

    def read_metrics(self) -> list[dict] | None:
        """The rows of metrics.jsonl, or None when it is missing or unreadable."""
        try:
            return [json.loads(line) for line in (self.path / "metrics.jsonl").read_text().splitlines()]
        except (OSError, ValueError):
            return None

    def save_checkpoint(self, name: str, state: dict) -> None:
        import torch
        atomic_write(self.path / f"{name}.pt", lambda f: torch.save(state, f), mode="wb")

    def copy_checkpoint(self, source: str, target: str) -> None:
        """``target.pt`` as a byte copy of ``source.pt``, written atomically."""
        with open(self.path / f"{source}.pt", "rb") as src:
            atomic_write(self.path / f"{target}.pt", lambda f: shutil.copyfileobj(src, f), mode="wb")

    def checkpoint_epoch(self, name: str) -> int | None:
        """The 1-based epoch checkpoint ``name`` holds, or None when it is missing or unreadable
        (memory-mapped: the tensors are not read)."""
        import torch
        try:
            return int(torch.load(self.path / f"{name}.pt", map_location="cpu", weights_only=True, mmap=True)["epoch"]) + 1
        except Exception:  # missing, truncated, not a tlf checkpoint: all mean "no usable best.pt"
            return None


def read_json(path: Path) -> Any:
    return json.loads(Path(path).read_text())


# what a checkpoint must hold to rebuild the model, and to resume training (the trainer writes
# both sets into best.pt and last.pt alike)
MODEL_KEYS = ("model", "classes", "epoch")
RESUME_KEYS = (*MODEL_KEYS, "optimizer", "scaler", "rng", "history", "best_acc", "elapsed")


def load_checkpoint(run_dir: str | Path, which: str = "last", map_location: str = "cpu",
                    needs: tuple[str, ...] = MODEL_KEYS) -> dict:
    """A checkpoint of a run, loaded with ``weights_only=True`` and checked to hold the keys
    ``needs`` (what the caller reads)."""
    import torch
    path = Path(run_dir) / f"{which}.pt"
    if not path.is_file():
        raise TlfError(f"{path} does not exist", hint=f"is {run_dir} a tlf run directory that finished an epoch?")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:
        raise load_error(path, exc) from None
    missing = [key for key in needs if not isinstance(state, dict) or key not in state]
    if missing:
        raise TlfError(f"{path} is not a tlf checkpoint: it lacks {', '.join(map(repr, missing))}",
                       hint="it was not written by 'tlf train' (a plain state dict goes to --weights); "
                            "use the run's other checkpoint (best/last) or train again")
    return state


def load_model_state(model: Any, state: dict, path: Path, classes: list[str] | None = None) -> None:
    """Load the weights of checkpoint ``state`` (read from ``path``) into ``model``, built from the
    run's plan. A checkpoint of another model, or of another class list than ``classes`` (the
    dataset's now), is one line naming what differs, not torch's ``size mismatch`` traceback."""
    saved = [str(c) for c in state.get("classes", [])]
    if classes is not None and list(classes) != saved:
        new, gone = [c for c in classes if c not in saved], [c for c in saved if c not in classes]
        change = "; ".join(p for p in (f"new: {', '.join(new)}" if new else "", f"gone: {', '.join(gone)}" if gone else "")
                           if p) or "the same names in another order"
        raise TlfError(f"{path} was trained on {len(saved)} classes and the dataset now has {len(classes)} ({change})",
                       hint="start a new run on the changed dataset, or put the dataset back as it was to resume")
    own, theirs = model.state_dict(), state["model"]
    differences = [f"{key} is {tuple(theirs[key].shape)} there and {tuple(own[key].shape)} here"
                   for key in own if key in theirs and tuple(theirs[key].shape) != tuple(own[key].shape)]
    missing, extra = [k for k in own if k not in theirs], [k for k in theirs if k not in own]
    if missing:
        differences.append(f"{len(missing)} tensor(s) missing there ({missing[0]}, ...)")
    if extra:
        differences.append(f"{len(extra)} tensor(s) unknown here ({extra[0]}, ...)")
    if differences:
        trained = state.get("config", {}).get("backbone") if isinstance(state.get("config"), dict) else None
        raise TlfError(f"{path} does not fit the model the run's settings build"
                       + (f" (it was trained with backbone {trained})" if trained else "") + f": {'; '.join(differences[:3])}",
                       hint="use this run's own checkpoint, or set config.yaml back to the backbone and head it was trained with")
    model.load_state_dict(theirs)


def load_error(path: Path, exc: Exception, what: str = "checkpoint",
               hint: str = "the file is damaged; use the other checkpoint (best/last)") -> TlfError:
    """One line for a file ``torch.load(weights_only=True)`` failed on. torch's errors run to 6-8
    lines of advice; the line that names the problem is kept: the refused global of a pickle that
    would run code (``... GLOBAL posix.system ...``), or the unpickler's reason."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    if lines and lines[0].startswith("Weights only load failed"):
        code = next((line for line in lines if "GLOBAL" in line), None)
        if code is not None:
            return TlfError(f"refused {what} {path}: it holds more than tensors and plain data ({code.rstrip('.')}); "
                            "nothing in it was run", hint="load only files written by tlf or torch.save, from a source you trust")
        advice = ("Weights only load failed", "Please file an issue", "Check the documentation")
        reason = next((line for line in lines if not line.startswith(advice)), "not a torch.save file")
        return TlfError(f"cannot read {what} {path}: {reason}", hint=hint)
    return TlfError(f"cannot read {what} {path}: {type(exc).__name__}: {lines[0] if lines else ''}", hint=hint)


def read_run_config(run_dir: str | Path) -> RunConfig:
    """The plan a run was started with (its config.yaml), typed and checked."""
    path = Path(run_dir) / "config.yaml"
    if not path.is_file():
        raise TlfError(f"{run_dir} is not a tlf run directory (no config.yaml)",
                       hint="pass a folder made by 'tlf train' (the last line it prints names it)")
    from .config_files import read_structured
    data = read_structured(path, "run settings", "restore the file from the run's checkpoint ('config' key) or start a new run")
    if not isinstance(data, dict):
        raise TlfError(f"{path} must hold a mapping of settings, not {type(data).__name__}",
                       hint="restore the file from the run's checkpoint ('config' key) or start a new run")
    return RunConfig.from_dict(data, source=str(path)).checked()
