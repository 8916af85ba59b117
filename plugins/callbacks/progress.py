"""What the user sees of a run: its first line, a progress bar per epoch (on a terminal) and
one line per epoch, through the run's :class:`~tlf.engine.progress.Reporter` (silent on
ranks other than 0 and with ``--quiet``)."""
from __future__ import annotations

from contextlib import ExitStack
from typing import Any

from tlf.engine.callback import Callback
from tlf.messages import escape
from tlf.models import count_params


class Progress(Callback):
    order = 70
    name = "progress"

    def __init__(self) -> None:
        self.bar = ExitStack()
        self.advance = None

    def before_fit(self, loop: Any) -> None:
        c, splits = loop.config, loop.parts.splits
        total, trainable = count_params(loop.model)
        loop.report.info(f"[bold]tlf[/bold] {escape(c.dataset)} · {escape(c.backbone)} · {escape(loop.policy.name)} · "
                         f"{len(splits.train)} train / {len(splits.val)} val images · "
                         f"{len(splits.classes)} classes · {trainable:,}/{total:,} trainable params · "
                         f"{loop.device.type} {loop.placement.precision}")
        loop.report.plan(c.epochs - loop.start_epoch, c.epochs, loop.source.steps_per_epoch(), loop.model.frozen_stages)

    def before_epoch(self, loop: Any) -> None:
        self.advance = self.bar.enter_context(
            loop.report.epoch(f"epoch {loop.epoch + 1}/{loop.config.epochs}", loop.source.steps_per_epoch(),
                              loop.epoch, loop.config.epochs))

    def after_batch(self, loop: Any) -> None:
        self.advance(loop.y.shape[0])

    def before_validate(self, loop: Any) -> None:
        self.bar.close()

    def after_epoch(self, loop: Any) -> None:
        row, metric = loop.row, loop.task.metric
        ema = f" (EMA {row[f'ema_val_{metric}']:.3f})" if f"ema_val_{metric}" in row else ""
        loop.report.info(f"epoch {loop.epoch + 1}/{loop.config.epochs}  train loss {row['train_loss']:.4f} "
                         f"{metric} {row[f'train_{metric}']:.3f}  val loss {row['val_loss']:.4f} "
                         f"{metric} {row[f'val_{metric}']:.3f}{ema}  {row['images_per_second']:.0f} img/s"
                         f"{'  *' if loop.improved else ''}")

    def after_failure(self, loop: Any, error: BaseException) -> None:
        self.bar.close()
