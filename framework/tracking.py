"""Experiment tracking: the ``--log NAME[,NAME...]`` loggers a training run writes to.

Loggers are plugins of their own kind (``tlf_register_loggers``, :class:`tlf.specs.LoggerSpec`);
the built-ins ``tensorboard``, ``mlflow`` and ``wandb`` register through the same entry points as
third-party ones. The run directory's own files (metrics.jsonl, curves.png, ...) are
written whatever ``--log`` says; loggers send the same figures elsewhere.

The trainer opens the loggers on rank 0 only, once the run directory exists, and calls
them at the places where it calls the lifecycle hooks. A logger that raises (server down,
disk full) is reported once by name (:func:`tlf.messages.warn`) and dropped; the
training goes on.
"""
from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import messages
from .errors import TlfError
from .registry import get_registry

STEP_EVERY = 10  # optimizer steps between step-level logs (each costs one device sync)
# the run directory's files a tracker keeps a copy of when the run ends (those it has by then)
RUN_FILES = ("config.yaml", "classes.json", "metrics.jsonl", "summary.json", "curves.png", "confusion.png",
             "pr_curves.png", "model.onnx", "report.html")


def run_files(run_dir: Path) -> list[Path]:
    """The :data:`RUN_FILES` that ``run_dir`` has."""
    return [run_dir / name for name in RUN_FILES if (run_dir / name).is_file()]


@dataclass(frozen=True)
class LoggerRequest:
    """What a logger's factory gets: the run it follows.

    ``history`` holds the epochs already done and ``step`` the optimizer steps already
    taken: both are empty/0 for a new run, and tell a resumed run's logger where to
    continue (``resumed`` is True), so that no step is logged twice.
    """

    run_dir: Path
    config: dict
    classes: list[str]
    history: list[dict] = field(default_factory=list)
    step: int = 0
    resumed: bool = False


class Logger:
    """One tracker a run reports to. Every method may be left as it is (nothing to log)."""

    def log_step(self, step: int, metrics: dict[str, float]) -> None:
        """Every :data:`STEP_EVERY` optimizer steps: ``train/loss`` and ``lr/<group>``."""

    def log_epoch(self, step: int, row: dict[str, Any]) -> None:
        """An epoch ended at optimizer step ``step``; ``row`` is its line of metrics.jsonl."""

    def log_confusion(self, step: int, epoch: int, matrix: list[list[int]]) -> None:
        """The validation confusion matrix of that epoch, ``matrix[true][predicted]`` counts in
        the order of ``request.classes`` (the raw weights', over every rank's share)."""

    def finish(self, summary: dict[str, Any] | None, status: str) -> None:
        """The run ended: ``status`` is ``finished`` (``summary`` is summary.json), ``failed``
        or ``killed`` (``summary`` is None). Flush and close here."""


def split_logger_names(text: str | None) -> list[str]:
    """``"tensorboard, mlflow:URI"`` -> ``["tensorboard", "mlflow:URI"]``; ``None``/``""``/``"none"`` -> []."""
    names = [part.strip() for part in (text or "").split(",") if part.strip()]
    return [] if names == ["none"] else list(dict.fromkeys(names))


def check_loggers(text: str | None) -> list[tuple[Any, str | None]]:
    """Resolve every ``--log`` name (unknown ones raise TlfError with suggestions) and check
    that the packages each needs are installed, before any work is done."""
    resolved = []
    for name in split_logger_names(text):
        spec, argument = get_registry().resolve("loggers", name)
        missing = [m for m in spec.modules if importlib.util.find_spec(m) is None]
        if missing:
            raise TlfError(f"logger {spec.name!r} needs the Python package(s) {', '.join(missing)}, "
                           f"which are not installed", hint=f"pip install {spec.install or ' '.join(missing)}")
        resolved.append((spec, argument))
    return resolved


class Loggers:
    """The run's loggers as one: each call goes to every logger still working."""

    def __init__(self, loggers: dict[str, Logger]) -> None:
        self.loggers = dict(loggers)

    @classmethod
    def open(cls, text: str | None, request: LoggerRequest) -> Loggers:
        """Create the loggers ``text`` names; one whose factory raises is reported and left out."""
        loggers = {}
        for spec, argument in check_loggers(text):
            label = spec.name if argument is None else f"{spec.name}:{argument}"
            try:
                loggers[label] = spec.build(argument, request)
            except TlfError:
                raise
            except Exception as exc:  # the tracker is down: the training is worth more than its log
                _warn(label, "could not start", exc)
        return cls(loggers)

    def __bool__(self) -> bool:
        return bool(self.loggers)

    def _call(self, method: str, *args: Any) -> None:
        for label, logger in list(self.loggers.items()):
            call = getattr(logger, method, None)
            if call is None:  # a logger that is not a Logger subclass may leave methods out
                continue
            try:
                call(*args)
            except Exception as exc:  # warn once, then go on without this logger
                del self.loggers[label]
                _warn(label, f"failed in {method}", exc)

    def log_step(self, step: int, metrics: dict[str, float]) -> None:
        self._call("log_step", step, metrics)

    def log_epoch(self, step: int, row: dict[str, Any]) -> None:
        self._call("log_epoch", step, row)

    def log_confusion(self, step: int, epoch: int, matrix: list[list[int]]) -> None:
        self._call("log_confusion", step, epoch, matrix)

    def finish(self, summary: dict[str, Any] | None, status: str = "finished") -> None:
        self._call("finish", summary, status)
        self.loggers.clear()


def _warn(label: str, what: str, exc: BaseException) -> None:
    messages.warn(f"logger {label!r} {what}: {type(exc).__name__}: {exc}; the run goes on without it")
