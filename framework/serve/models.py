"""The models a server holds: ``[NAME=]PATH`` arguments -> loaded :class:`ServedModel`\\ s.

A PATH is a ``tlf export`` file, or a run directory whose ``model.onnx`` is used (written first
by ``tlf export`` in a child process, parity gate included, when missing or older than the
checkpoint: the export needs torch, the serving process never imports it).
"""
from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..data.download import file_hash
from ..errors import TlfError
from ..runtime import OnnxClassifier

EXPORTED = "model.onnx"  # what 'tlf export RUN_DIR' writes without -o
CHECKPOINT = "best.pt"  # what it exports without --checkpoint
PROVENANCE = ("backbone", "policy", "dataset", "val_accuracy", "precision", "tta")


@dataclass
class ServedModel:
    """One model: its name in the API, a version (its file's SHA-256, first 12 digits) and the runtime."""

    name: str
    version: str
    classifier: OnnxClassifier

    def describe(self) -> dict[str, Any]:
        """``GET /models`` entry: classes, input size, preprocessing, provenance."""
        meta = self.classifier.metadata
        return {"name": self.name, "version": self.version, "classes": self.classifier.classes,
                "input_size": [3, self.classifier.crop, self.classifier.crop],
                "input_dtype": "uint8" if self.classifier.in_graph else "float32",
                "preprocessing": self.preprocessing(), "tlf_version": meta.get("version"),
                **{key: meta.get(key) for key in PROVENANCE}}

    def preprocessing(self) -> dict[str, Any]:
        """The preprocessing contract the model's file carries (what ``tlf predict`` applies)."""
        return self.classifier.preprocessing.to_metadata()


def parse_argument(text: str) -> tuple[str | None, Path]:
    """``NAME=PATH`` -> (NAME, PATH); ``PATH`` -> (None, PATH)."""
    name, sep, path = text.partition("=")
    if sep and name and "/" not in name and not Path(text).exists():
        return name, Path(path)
    return None, Path(text)


def onnx_file(path: Path) -> Path:
    """``path`` itself, or a run directory's export (made now when missing or stale)."""
    if not path.is_dir():
        if not path.exists():
            raise TlfError(f"model {path} not found", hint="pass a file written by 'tlf export' or a run directory")
        return path
    if not (path / "config.yaml").is_file():
        raise TlfError(f"{path} is a folder but not a tlf run directory (no config.yaml)",
                       hint="pass a run directory or a file written by 'tlf export'")
    exported, checkpoint = path / EXPORTED, path / CHECKPOINT
    if exported.is_file() and not (checkpoint.is_file() and checkpoint.stat().st_mtime > exported.stat().st_mtime):
        return exported
    _export(path)
    return exported


def _export(run_dir: Path) -> None:
    """``tlf export RUN_DIR`` in a child process (torch stays out of this one)."""
    done = subprocess.run([sys.executable, "-m", "tlf", "export", str(run_dir)], capture_output=True, text=True)
    if done.returncode != 0:
        lines = done.stderr.strip().splitlines() or ["no output"]
        raise TlfError(f"exporting {run_dir} failed: {lines[-1].removeprefix('Error: ')}",
                       hint=f"run 'tlf export {run_dir}' to see the whole report")


def file_version(path: Path) -> str:
    """First 12 hex digits of the file's SHA-256: changes whenever the model does."""
    return file_hash(path)[:12]


def load_models(arguments: tuple[str, ...], threads: int | None = None) -> dict[str, ServedModel]:
    """Every ``[NAME=]PATH`` loaded, in order (the first is the default); names must differ."""
    if not arguments:
        raise TlfError("no model to serve", hint="pass a file written by 'tlf export' or a run directory")
    models: dict[str, ServedModel] = {}
    for text in arguments:
        name, path = parse_argument(text)
        file = onnx_file(path)
        name = name or (path.name if path.is_dir() else path.stem)
        if name in models:
            raise TlfError(f"two models are named {name!r}", hint=f"name them: NAME={path}")
        try:
            version = file_version(file)
        except OSError as exc:
            raise TlfError(f"cannot read model {file}: {exc.strerror or exc}", hint="check the file's permissions") from None
        models[name] = ServedModel(name, version, OnnxClassifier(file, threads=threads))
    return models
