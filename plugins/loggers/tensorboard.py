"""The ``tensorboard`` logger, on ``torch.utils.tensorboard``.

Event files go into the run directory itself, so ``tensorboard --logdir runs/`` shows
every run under its directory name. Every scalar is logged against the optimizer step
(epoch rows at the step that ended the epoch, under ``epoch/``), which gives one x-axis
for all of them. A resumed run opens its writer with ``purge_step`` just after the step of
its checkpoint: TensorBoard drops whatever the interrupted process logged after that
checkpoint, and the resumed run logs those steps again, so each step appears once.
"""
from __future__ import annotations

import numbers
from typing import Any

from tlf.tracking import Logger, LoggerRequest

IMAGES = ("curves.png", "confusion.png", "pr_curves.png")  # run-directory figures logged at the end, when present


class TensorBoardLogger(Logger):
    """Scalars per step and per epoch, each epoch's validation confusion matrix and the run's
    figures as images, the config as hparams."""

    def __init__(self, request: LoggerRequest) -> None:
        from torch.utils.tensorboard import SummaryWriter
        self.request = request
        self.writer = SummaryWriter(str(request.run_dir), purge_step=request.step + 1 if request.resumed else None)

    def log_step(self, step: int, metrics: dict[str, float]) -> None:
        for key, value in metrics.items():
            self.writer.add_scalar(key, value, step)

    def log_epoch(self, step: int, row: dict[str, Any]) -> None:
        for key, value in row.items():
            if isinstance(value, numbers.Number):
                self.writer.add_scalar(f"epoch/{key}", value, step)
        self.writer.flush()

    def log_confusion(self, step: int, epoch: int, matrix: list[list[int]]) -> None:
        """The epoch's validation confusion matrix, as the image ``val/confusion`` (IMAGES tab,
        its step slider goes through the epochs)."""
        from tlf.plots.confusion import confusion_figure
        self.writer.add_figure("val/confusion", confusion_figure(matrix, self.request.classes,
                                                                 f"validation, epoch {epoch}"), step, close=True)
        self.writer.flush()

    def finish(self, summary: dict[str, Any] | None, status: str) -> None:
        if summary is not None:
            self._figures(summary)
            self._hparams(summary)
        self.writer.close()

    def _figures(self, summary: dict[str, Any]) -> None:
        import numpy as np
        from PIL import Image
        step = int(summary.get("epochs") or 0)
        for name in IMAGES:
            path = self.request.run_dir / name
            if path.is_file():
                with Image.open(path) as image:
                    pixels = np.asarray(image.convert("RGB"))
                self.writer.add_image(name.removesuffix(".png"), pixels, step, dataformats="HWC")

    def _hparams(self, summary: dict[str, Any]) -> None:
        """The resolved config in the HParams tab, with the best accuracy as its metric.

        ``SummaryWriter.add_hparams`` writes into a new sub-directory (a separate run in
        TensorBoard); its summaries are written into this run's own file instead."""
        from torch.utils.tensorboard.summary import hparams
        config = {k: v if isinstance(v, (bool, int, float, str)) else str(v) for k, v in self.request.config.items()}
        metrics = {"hparams/best_val_accuracy": summary.get("best_val_accuracy") or 0.0}
        for event in hparams(config, metrics):
            self.writer.file_writer.add_summary(event)
        for key, value in metrics.items():
            self.writer.add_scalar(key, value)
