"""The bridge to the ``--log`` loggers (TensorBoard, MLflow, any ``LoggerSpec``): opened on the
main process once training starts, told every :data:`~tlf.tracking.STEP_EVERY` steps, every
epoch and the end (or the failure). A logger that fails is dropped and the run goes on
(:class:`tlf.tracking.Loggers`)."""
from __future__ import annotations

from typing import Any

from tlf.engine.callback import Callback
from tlf.tracking import STEP_EVERY, LoggerRequest, Loggers, check_loggers


class LoggersBridge(Callback):
    order = 90
    name = "loggers"

    def __init__(self, request: Any) -> None:
        if request.is_main:
            check_loggers(request.plan.loggers)  # unknown names, missing packages: before any work
        self.loggers = Loggers({})

    def before_fit(self, loop: Any) -> None:
        if loop.is_main:
            self.loggers = Loggers.open(loop.config.loggers, LoggerRequest(
                loop.run_dir.path, loop.config.to_dict(), list(loop.parts.splits.classes), list(loop.history),
                loop.step, resumed=loop.start_epoch > 0))

    def after_step(self, loop: Any) -> None:
        if self.loggers and loop.step % STEP_EVERY == 0:
            groups = loop.optimizer.param_groups
            self.loggers.log_step(loop.step, {"train/loss": loop.loss.item(),
                                              **{f"lr/{g.get('name', j)}": g["lr"] for j, g in enumerate(groups)}})

    def after_epoch(self, loop: Any) -> None:
        self.loggers.log_epoch(loop.step, loop.row)
        confusion = loop.scores["raw"].get("confusion")
        if self.loggers and confusion is not None:
            self.loggers.log_confusion(loop.step, loop.epoch + 1, confusion.tolist())

    def after_fit(self, loop: Any) -> None:
        self.loggers.finish(loop.summary)

    def after_failure(self, loop: Any, error: BaseException) -> None:
        self.loggers.finish(None, "killed" if isinstance(error, KeyboardInterrupt) else "failed")
