"""Built-in callbacks: everything a run does besides the loop itself, registered exactly as a
third-party package registers its own (``always``: built for every run; a factory returns
None where the plan does not need it). Registration only: each factory imports its module on use.

Their order within an event (lower first): ema 0, lr-finder 5, schedule 10, early-stopping 20,
plugin callbacks 50 by default, checkpoint 60, test-split 65, progress 70, hooks 80, loggers 90, and last
should-stop 95 (the ``tlf.train(should_stop=...)`` caller's: asked once the epoch is saved and logged).
"""
from __future__ import annotations

from typing import Any, Callable

from tlf.hookspecs import hookimpl
from tlf.specs import CallbackSpec


def _checkpoint(argument: None, request: Any) -> Any:
    from .checkpoint import Checkpointing
    return Checkpointing(request)


def _early_stopping(argument: None, request: Any) -> Any:
    from .early_stopping import EarlyStopping
    return EarlyStopping(request.plan.patience) if request.plan.patience is not None else None


def _ema(argument: None, request: Any) -> Any:
    from .ema import Ema
    return Ema(request.plan.ema) if request.plan.ema else None


def _lr_finder(argument: None, request: Any) -> Any:
    from .lr_finder import LrFinder
    return LrFinder() if request.plan.lr == "auto" else None


def _schedule(argument: None, request: Any) -> Any:
    from .schedule import LrSchedule
    return LrSchedule()


def _progress(argument: None, request: Any) -> Any:
    from .progress import Progress
    return Progress()


def _hooks(argument: None, request: Any) -> Any:
    from .hooks import LifecycleHooks
    return LifecycleHooks()


def _held_out(argument: None, request: Any) -> Any:
    from .held_out import HeldOutTest
    return HeldOutTest() if request.plan.test_split else None


def _loggers(argument: None, request: Any) -> Any:
    from .loggers import LoggersBridge
    return LoggersBridge(request) if request.plan.loggers else None


BUILTINS = (
    ("checkpoint", _checkpoint, "last.pt every epoch, best.pt on improvement, metrics and curves; crash repair and --resume"),
    ("early-stopping", _early_stopping, "--patience N: stop when the task's criterion has not improved for N epochs"),
    ("ema", _ema, "--ema DECAY: an exponential moving average of the weights, validated and checkpointed"),
    ("lr-finder", _lr_finder, "--lr auto: lr_find.png and the chosen lr in config.yaml (the range test: the plan's last step)"),
    ("schedule", _schedule, "--schedule: the lr of every optimizer step (warm-up, cosine, onecycle, step, plateau)"),
    ("progress", _progress, "the run's first line, a progress bar per epoch, one line per epoch"),
    ("test-split", _held_out, "a test split's figures at the end: the checkpoint picked on validation, scored on it (--no-test-split: not)"),
    ("hooks", _hooks, "the lifecycle hooks tlf_on_run_start, tlf_on_epoch_end, tlf_on_run_end"),
    ("loggers", _loggers, "--log: TensorBoard, MLflow and any logger plugin, at every step, epoch and the end"),
)


@hookimpl
def tlf_register_callbacks(register: Callable[[CallbackSpec], None]) -> None:
    for name, factory, description in BUILTINS:
        register(CallbackSpec(name=name, factory=factory, description=description, always=True))
