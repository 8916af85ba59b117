"""The run directory: everything a run writes, each file written atomically.

```
runs/<dataset>-<backbone>-<policy>-<UTC timestamp>/
  config.yaml preprocessing.json classes.json metrics.jsonl metrics.csv last.pt best.pt curves.png summary.json
  .lock   held (flock) by the process training the run
```

A run directory appears complete: it is filled under a hidden temp name and renamed into place,
so it never exists without its ``config.yaml``. A write that fails (disk full, file too large,
permission) leaves the previous file intact and is a :class:`TlfError` naming the file, the cause
and the fix.
"""
from __future__ import annotations

import csv
import errno
import fcntl
import io
import json
import os
import re
import secrets
import shutil
import tempfile
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from .config import RunConfig
from .errors import TlfError
from .preprocessing import Preprocessing

CHECKPOINTS = ("best", "last")  # the checkpoints a run keeps (best.pt, last.pt): --checkpoint's choices
PREPROCESSING_FILE = "preprocessing.json"  # the run's tlf.preprocessing.Preprocessing


WRITE_ERRORS = {  # errno -> (cause, fix)
    errno.ENOSPC: ("the disk is full", "free space on that disk (or write runs elsewhere with --out), then resume"),
    errno.EDQUOT: ("the disk quota is exceeded", "free space within your quota (or use --out elsewhere), then resume"),
    errno.EFBIG: ("the file is too large for this file system or process limit",
                  "raise the file-size limit (ulimit -f) or write runs to another file system with --out"),
    errno.EPERM: ("permission denied", "make the folder writable, or choose another --out"),
    errno.EACCES: ("permission denied", "make the folder writable, or choose another --out"),
    errno.EROFS: ("the file system is read-only", "choose a writable --out"),
}


def write_error(path: Path, exc: BaseException) -> TlfError | None:
    """A one-line :class:`TlfError` for a failed write of ``path``, when ``exc`` is (or was caused
    by) an ``OSError``; torch.save wraps the OSError in a RuntimeError, so the chain is searched."""
    seen = exc
    while seen is not None and not isinstance(seen, OSError):
        seen = seen.__cause__ or seen.__context__
    if seen is None:
        return None
    cause, fix = WRITE_ERRORS.get(seen.errno, (seen.strerror or type(seen).__name__, "check the folder and disk"))
    return TlfError(f"cannot write {path}: {cause} ({errno.errorcode.get(seen.errno, seen.errno)}); "
                    f"the previous version of the file is kept", hint=fix)


def atomic_write(path: Path, write: Callable[[Any], None], mode: str = "w") -> None:
    """Write through ``write(file)`` into a temp file beside ``path``, then rename it into place.

    A failure leaves ``path`` as it was and no temp file; an OS-level write failure is a
    :class:`TlfError` (see :func:`write_error`).
    """
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, mode) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        error = write_error(path, exc) if isinstance(exc, Exception) else None
        if error is not None:
            raise error from None
        raise


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.]+", "_", text).strip("_")[:60] or "run"


class RunDirWriter:
    """A run directory being written."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock: int | None = None  # the locked file descriptor, while this process holds the run

    @classmethod
    def create(cls, out: str | Path, dataset: str, backbone: str, policy: str, name: str | None = None,
               files: dict[str, str] | None = None) -> RunDirWriter:
        """A new run directory under ``out`` holding ``files`` (name -> text) and locked by this
        process. It is filled under a hidden temp name and renamed into place, so it appears
        complete or not at all; a name taken meanwhile (by a concurrent run) moves on to the
        next ``-N`` suffix, or is an error for an explicit ``name``."""
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        base = Path(out) / (name or "-".join(_slug(p) for p in (dataset, backbone, policy, stamp)))
        try:
            base.parent.mkdir(parents=True, exist_ok=True)
            staging = base.parent / f".{base.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
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
        """Take the run's exclusive lock (``.lock``, flock) until :meth:`unlock` or the process ends.

        A run held by another process is a :class:`TlfError` naming that process."""
        if self._lock is not None:
            return
        path = self.path / ".lock"
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise write_error(path, exc) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise TlfError(f"run {self.path} is being trained by process {holder}",
                           hint="wait for it to finish (or stop it), then resume") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._lock = fd

    def unlock(self) -> None:
        """Release the lock taken by :meth:`lock` (the file stays; only the flock matters)."""
        fd, self._lock = self._lock, None
        if fd is not None:
            os.close(fd)

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
class TrainedModel:
    """A finished (or interrupted) run, ready for evaluation or export."""

    directory: Path
    config: RunConfig  # the run's plan
    classes: list[str]
    model: Any  # tlf.models.Classifier in eval mode
    meta: Any  # tlf.models.BackboneMeta
    preprocessing: Preprocessing
    summary: dict
    checkpoint: str


def load_run(run_dir: str | Path, which: str = "best") -> TrainedModel:
    """Rebuild a run's model with its ``best`` (or ``last``) weights, on the CPU, in eval mode."""
    from .models import build_model
    run_dir = Path(run_dir)
    config = read_run_config(run_dir)
    state = load_checkpoint(run_dir, which)
    classes = list(state["classes"])
    model = build_model(config.backbone, len(classes), pretrained=False, head=config.head,
                        dropout=config.dropout, image_size=config.image_size, pooling=config.pooling)
    model.load_state_dict(state["model"])
    model.eval()
    summary_path = run_dir / "summary.json"
    summary = read_json(summary_path) if summary_path.is_file() else {}
    meta = model.backbone.meta
    return TrainedModel(run_dir, config, classes, model, meta, read_preprocessing(run_dir, meta, config.image_size),
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
