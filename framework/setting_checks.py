"""Checking settings: each value's type and range, and where a run may write.

One place for the rules, so flags, config files and the Python API are held to the same
ones (:meth:`tlf.config.RunConfig.checked` applies them to every run setting; commands
with their own arguments, such as ``evaluate --top-k``, call :func:`check_value`).
Types come from :class:`~tlf.config.RunConfig`'s annotations, so a new setting is
type-checked without an entry here; ranges are listed in :data:`RANGES`.
"""
from __future__ import annotations

import math
import os
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import TlfError
from .preprocessing import MAX_IMAGE_SIZE

MAX_BATCH_SIZE = 65536  # bounds what --batch-size (and --accumulate) may ask for, before anything is allocated

PSEUDO_FILESYSTEMS = ("/proc", "/sys", "/dev")  # no run directory can live there


@dataclass(frozen=True)
class Range:
    """Allowed values ``low .. high``; ``open_low``/``open_high`` exclude the end itself."""

    low: float | None = None
    high: float | None = None
    open_low: bool = False
    open_high: bool = False
    why: str = ""  # appended to the message, e.g. "conv5 has stride 32"
    why_high: str = ""  # appended instead when the value is above ``high``

    def __contains__(self, value: float) -> bool:
        if self.low is not None and (value < self.low or (self.open_low and value == self.low)):
            return False
        return not (self.high is not None and (value > self.high or (self.open_high and value == self.high)))

    def describe(self) -> str:
        low = None if self.low is None else f"{'above' if self.open_low else 'at least'} {self.low:g}"
        high = None if self.high is None else f"{'below' if self.open_high else 'at most'} {self.high:g}"
        return " and ".join(p for p in (low, high) if p)

    def reason(self, value: float) -> str:
        """Why ``value`` (outside the range) is refused, in brackets, or nothing."""
        above = self.high is not None and value >= self.high
        why = (self.why_high or self.why) if above else self.why
        return f" ({why})" if why else ""


RANGES: dict[str, Range] = {
    "epochs": Range(1, 100_000),
    "batch_size": Range(1, MAX_BATCH_SIZE),
    "image_size": Range(32, MAX_IMAGE_SIZE, why="conv5 has stride 32", why_high="larger images need gigabytes each"),
    "lr": Range(0, open_low=True),
    "head_lr_scale": Range(0, open_low=True),
    "weight_decay": Range(0),
    "momentum": Range(0, 1, open_high=True),
    "warmup_epochs": Range(0),
    "label_smoothing": Range(0, 1, open_high=True),
    "grad_clip": Range(0, open_low=True),
    "seed": Range(0, 2**63 - 1),
    "workers": Range(0, 256),
    "dropout": Range(0, 1, open_high=True),
    "val_split": Range(0, 1, open_low=True, open_high=True),
    "patience": Range(1),
    "accumulate": Range(1, MAX_BATCH_SIZE),
    "ema": Range(0, 1, open_low=True, open_high=True, why="a decay: ema = decay * ema + (1 - decay) * weights"),
}


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _type_name(kind: type) -> str:
    return {int: "a whole number", float: "a number", bool: "true or false", str: "text"}.get(kind, kind.__name__)


def coerce(name: str, value: Any, annotation: Any) -> Any:
    """``value`` as the annotated type (``int``, ``float``, ``bool``, ``str``, optionally ``| None``);
    anything else is a :class:`TlfError` naming the setting."""
    if typing.get_origin(annotation) is tuple:  # tuple[str, ...]: a repeatable flag's texts
        if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
            return tuple(value)
        raise TlfError(f"{name} must be a list of texts, got {value!r}", hint=f"e.g. {name}: [NAME, NAME:ARG]")
    args = typing.get_args(annotation)
    kinds = [a for a in args if a is not type(None)] if args else [annotation]
    if value is None:
        if type(None) in args:
            return None
        raise TlfError(f"{name} needs a value, got none", hint=f"set {name} or leave it out for the default")
    for kind in kinds:
        if kind is bool and isinstance(value, bool):
            return value
        if kind is int and isinstance(value, int) and not isinstance(value, bool):
            return value
        if kind is float and isinstance(value, (int, float)) and not isinstance(value, bool):
            if not math.isfinite(value):
                break
            return float(value)
        if kind is float and isinstance(value, str):  # YAML 1.1 reads 1e-3 (no dot) as text
            try:
                number = float(value)
            except ValueError:
                continue
            if math.isfinite(number):
                return number
        if kind is str and isinstance(value, str):
            return value
    wanted = " or ".join(_type_name(k) for k in kinds)
    raise TlfError(f"{name} must be {wanted}, got {value!r}", hint=f"e.g. {_flag(name)} with {wanted}")


def check_value(name: str, value: Any, kind: type, allowed: Range | None = None) -> Any:
    """``value`` checked as ``kind`` within ``allowed``; returns it (floats as float)."""
    value = coerce(name, value, kind)
    if allowed is not None and value is not None and value not in allowed:
        raise TlfError(f"{name} must be {allowed.describe()}, got {value!r}{allowed.reason(value)}",
                       hint=f"pass {_flag(name)} {allowed.describe()}")
    return value


def check_choice(name: str, value: str, choices: typing.Sequence[str]) -> str:
    if value not in choices:
        raise TlfError(f"invalid {name} {value!r}", hint=f"choose one of: {', '.join(choices)}")
    return value


def check_out_dir(out: str) -> None:
    """``out`` can hold run directories: not under a file, a pseudo-filesystem or a read-only folder."""
    path = Path(out).expanduser().absolute()
    if any(path == Path(p) or Path(p) in path.parents for p in PSEUDO_FILESYSTEMS):
        raise TlfError(f"--out {out} is on a system pseudo-filesystem", hint="choose a folder such as runs/")
    for parent in (path, *path.parents):
        if parent.exists():
            if not parent.is_dir():
                raise TlfError(f"--out {out} is under the file {parent}, not a folder",
                               hint="choose a folder path for --out")
            if not os.access(parent, os.W_OK | os.X_OK):
                raise TlfError(f"--out {out}: no permission to write in {parent}",
                               hint="choose a folder you can write to")
            return


def check_run_name(name: str) -> None:
    """A run directory name is one path component."""
    if name in ("", ".", "..") or "/" in name or os.sep in name:
        raise TlfError(f"--name {name!r} is not a plain folder name", hint="use letters, digits, '-' and '_'; "
                                                                          "put the parent folder in --out")
