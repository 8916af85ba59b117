"""Callbacks: how built-in and plugin code takes part in a training run.

The loop (:class:`tlf.engine.trainer.Trainer`) reads fit -> epoch -> batch -> step and
calls one *event* at each point; every concern outside that — checkpoints, resume, early
stopping, EMA, the lr finder, the schedule, progress lines, loggers, lifecycle hooks — is
a :class:`Callback` registered through ``tlf_register_callbacks`` (:class:`tlf.specs.CallbackSpec`),
tlf's own exactly as a third-party package's. The design follows fastai's ``Learner``:
events named ``before_*``/``after_*``, an ``order``, and exceptions that cancel the epoch
or the fit.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

from ..errors import TlfError
from ..pluginmanager import plugin_failure
from ..registry import get_registry

# in the order the loop calls them; the batch events repeat for every (micro-)batch
EVENTS = ("after_create", "before_fit", "before_epoch", "before_batch", "after_loss", "after_backward",
          "before_step", "after_step", "after_batch", "before_validate", "after_validate", "after_epoch",
          "after_fit", "after_failure")


class CancelEpoch(Exception):
    """Raised by a callback in ``before_epoch`` or a batch event: the rest of this epoch's
    training batches are skipped (validation, checkpoint and ``after_epoch`` still run)."""


class CancelFit(Exception):
    """Raised by a callback: the run ends after this event, as early stopping ends it; the
    message is printed. The event's other callbacks still run first, so an epoch that ends
    the fit is checkpointed and reported like any other."""


class Callback:
    """Base of every callback: override the events you need; each gets the loop.

    ``order``: lower runs first within an event (the built-ins' orders: docs/plugins.md).
    ``name``: the key of this callback's state in checkpoints. ``state_dict`` /
    ``load_state_dict``: what the callback needs to resume exactly (plain data and tensors,
    saved in ``last.pt`` at every epoch end and given back on ``--resume``).
    """

    order: int = 50
    name: str = ""
    plugin: str = ""  # the providing package, filled in when built from a spec

    def after_create(self, loop: Any) -> None:
        """The loop's model, optimizer and data exist; a resumed run's state is not loaded yet."""

    def before_fit(self, loop: Any) -> None:
        """Training is about to start (the batch source is prepared)."""

    def before_epoch(self, loop: Any) -> None:
        """``loop.epoch`` (0-based) starts."""

    def before_batch(self, loop: Any) -> None:
        """``loop.x``/``loop.y`` hold the batch; ``loop.starts_step``: first micro-batch of an optimizer step."""

    def after_loss(self, loop: Any) -> None:
        """``loop.logits`` and ``loop.loss`` are computed (before the backward pass)."""

    def after_backward(self, loop: Any) -> None:
        """The gradients of ``loop.loss`` are accumulated."""

    def before_step(self, loop: Any) -> None:
        """The optimizer is about to step (gradients still scaled by the GradScaler under fp16)."""

    def after_step(self, loop: Any) -> None:
        """The optimizer stepped; ``loop.step`` counts the run's optimizer steps."""

    def after_batch(self, loop: Any) -> None:
        """The batch is done and counted."""

    def before_validate(self, loop: Any) -> None:
        """The epoch's training batches are done; validation starts."""

    def after_validate(self, loop: Any) -> None:
        """``loop.scores`` holds the validation scores of each set of weights (``raw``, ``ema``, ...)."""

    def after_epoch(self, loop: Any) -> None:
        """``loop.row`` (the metrics.jsonl line) is recorded in ``loop.history``; ``loop.improved``."""

    def after_fit(self, loop: Any) -> None:
        """The run ended normally (all epochs, or cancelled); ``loop.summary`` is being built."""

    def after_failure(self, loop: Any, error: BaseException) -> None:
        """The run failed or was interrupted (``KeyboardInterrupt``) with ``error``."""

    def summary(self, loop: Any) -> dict[str, Any]:
        """Entries this callback adds to summary.json."""
        return {}

    def state_dict(self) -> dict[str, Any] | None:
        """What resumes this callback exactly (None: nothing)."""
        return None

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`'s value (on ``--resume``)."""

    def close(self) -> None:
        """Release what the callback holds (files, locks); called once the run is over, whatever happened."""


@dataclass(frozen=True)
class CallbackRequest:
    """What a callback's factory gets: the run's plan and how the run directory is used."""

    plan: Any  # tlf.config.RunConfig: the resolved plan
    resume_dir: Path | None = None  # the run directory being resumed
    open_run_dir: bool = True  # False: no run directory (the lr finder)
    is_main: bool = True  # rank 0 (the process that writes files) under torch.distributed


def build_callbacks(request: CallbackRequest) -> list[Callback]:
    """The run's callbacks: every ``always`` spec's (those that apply to the plan), then the
    plan's ``--callback`` ones in the order given; a plugin factory that fails is named with its package."""
    registry = get_registry()
    wanted = [(spec, None) for spec in registry.specs("callbacks") if spec.always]
    wanted += [registry.resolve("callbacks", text) for text in request.plan.callbacks]
    built: list[Callback] = []
    try:
        for spec, argument in wanted:
            callback = _build(spec, argument, request)
            if callback is not None:
                built.append(callback)
    except BaseException:
        for callback in built:
            callback.close()
        raise
    return built


def _build(spec: Any, argument: str | None, request: CallbackRequest) -> Callback | None:
    try:
        callback = spec.build(argument, request)
    except TlfError:
        raise
    except Exception as exc:
        raise TlfError(f"callback {spec.name!r} from package {spec.plugin} could not start: {type(exc).__name__}: {exc}",
                       hint=f"a bug in package {spec.plugin}: report it to its authors, or drop --callback {spec.name}") from exc
    if callback is None:
        return None
    if not isinstance(callback, Callback):
        raise TlfError(f"callback plugin {spec.name!r} from package {spec.plugin} returned {type(callback).__name__}, "
                       f"expected tlf.engine.callback.Callback",
                       hint=f"a bug in package {spec.plugin}: report it to its authors, or uninstall it")
    callback.name = callback.name or spec.name
    callback.plugin = spec.plugin
    return callback


class StopWhenAsked(Callback):
    """``tlf.train(should_stop=...)``: asks ``should_stop(epoch, row)`` after every epoch (a tuner's pruner)."""

    order = 95
    name = "should-stop"

    def __init__(self, should_stop: Callable[[int, dict], bool]) -> None:
        self.should_stop = should_stop

    def after_epoch(self, loop: Any) -> None:
        if self.should_stop(loop.epoch + 1, {**loop.row, "criterion": loop.task.best_of(loop.row)[0]}):
            raise CancelFit(f"stopped after epoch {loop.epoch + 1} (asked by the caller, e.g. a tuner's pruner)")


class Callbacks:
    """A run's callbacks, sorted by ``order``; calling one event calls it on each.

    A callback that raises anything but a cancel stops the run with a one-line error naming
    it and its package (a callback can change the training, so going on without it would
    give a run that is neither what was asked nor repeatable); the checkpoints written so far
    are complete, and ``--resume`` continues from the last one.
    """

    def __init__(self, callbacks: Iterable[Callback]) -> None:
        self.items = sorted(callbacks, key=lambda cb: cb.order)  # stable: equal orders keep their listing

    def __iter__(self):
        return iter(self.items)

    def find(self, name: str) -> Callback | None:
        return next((cb for cb in self.items if cb.name == name), None)

    def __call__(self, event: str, loop: Any, *args: Any) -> None:
        cancel: Exception | None = None
        for cb in self.items:
            try:
                getattr(cb, event)(loop, *args)
            except (CancelFit, CancelEpoch) as exc:  # the event's other callbacks still run
                cancel = cancel if isinstance(cancel, CancelFit) else exc
            except TlfError:
                raise
            except BaseException as exc:
                if not plugin_failure(exc) or not cb.plugin or cb.plugin == "tlf":
                    raise
                raise callback_error(cb, event, exc) from exc
        if cancel is not None:
            raise cancel

    def states(self) -> dict[str, Any]:
        """Each named callback's state, for a checkpoint."""
        return {cb.name: state for cb in self.items if cb.name and (state := cb.state_dict()) is not None}

    def load_states(self, states: dict[str, Any]) -> None:
        for cb in self.items:
            if cb.name in states:
                cb.load_state_dict(states[cb.name])


def callback_error(cb: Callback, event: str, exc: BaseException) -> TlfError:
    """The one line for a plugin callback that raised."""
    return TlfError(f"callback {cb.name!r} from package {cb.plugin} failed in {event}: {type(exc).__name__}: {exc}",
                    hint="the run stopped; its last checkpoint is complete: fix or drop the callback and resume "
                         "with --resume RUN")
