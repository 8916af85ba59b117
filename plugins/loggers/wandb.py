"""The ``wandb`` logger, on Weights & Biases' ``wandb.init(...)`` run objects (one per run, so
several runs in one process, as in ``tlf compare`` and ``tlf tune``, each get their own).

Where: the project is ``wandb:PROJECT``, else ``WANDB_PROJECT``, else the dataset plugin's name;
W&B's own files go into ``RUN_DIR/wandb/``. ``WANDB_MODE=offline`` logs without an account
or a network, and ``wandb sync RUN_DIR/wandb/offline-run-*`` uploads it later.

Step-level scalars (``train/loss``, ``lr/<group>``) are plotted against the optimizer step
(``step``), epoch rows (``epoch/<key>``) and the validation confusion matrix (``val/confusion``)
against ``epoch``. The W&B run's id and what it has been sent are kept in the run directory
(``wandb.json``); a resumed run continues the same W&B run and sends only the steps and
epochs it has not sent yet.
"""
from __future__ import annotations

import json
import numbers
import os
from typing import Any

from tlf.safe_files import atomic_write
from tlf.tracking import Logger, LoggerRequest, run_files

RUN_FILE = "wandb.json"
STEP_KEYS = ("train/*", "lr/*")  # logged against the optimizer step
EPOCH_KEYS = ("epoch/*", "val/*")  # logged against the epoch


class WandbLogger(Logger):
    """Config, per-step and per-epoch scalars, each epoch's validation confusion matrix as an
    image, the best accuracy in the run's summary and the run's files."""

    def __init__(self, request: LoggerRequest, project: str | None = None) -> None:
        import wandb
        self.request = request
        record = request.run_dir / RUN_FILE
        self.sent = json.loads(record.read_text()) if request.resumed and record.is_file() else {}
        project = self.sent.get("project") or project or os.environ.get("WANDB_PROJECT") \
            or str(request.config.get("dataset") or "tlf").split(":")[0]  # W&B refuses ':' in names
        self.run = wandb.init(project=project, id=self.sent.get("run_id"), resume="allow" if self.sent else None,
                              name=request.run_dir.name, dir=str(request.run_dir), config=request.config,
                              job_type="train", reinit="create_new",
                              settings=wandb.Settings(console="off"))  # tlf prints its own progress
        for key in STEP_KEYS:
            self.run.define_metric(key, step_metric="step")
        for key in EPOCH_KEYS:
            self.run.define_metric(key, step_metric="epoch")
        self.sent = {"project": project, "run_id": self.run.id, "step": self.sent.get("step", 0),
                     "epoch": self.sent.get("epoch", 0)}
        self._record()
        for row in request.history:  # epochs the interrupted process checkpointed but did not send
            self.log_epoch(request.step, row)

    def _record(self) -> None:
        atomic_write(self.request.run_dir / RUN_FILE, lambda f: f.write(json.dumps(self.sent) + "\n"))

    def log_step(self, step: int, metrics: dict[str, float]) -> None:
        if step > self.sent["step"]:
            self.run.log({**metrics, "step": step})
            self.sent["step"] = step
            self._record()

    def log_epoch(self, step: int, row: dict[str, Any]) -> None:
        epoch = int(row["epoch"])
        if epoch > self.sent["epoch"]:
            self.run.log({"epoch": epoch, **{f"epoch/{key}": value for key, value in row.items()
                                             if key != "epoch" and isinstance(value, numbers.Number)}})
            self.sent["epoch"] = epoch
            self._record()

    def log_confusion(self, step: int, epoch: int, matrix: list[list[int]]) -> None:
        """The epoch's validation confusion matrix, as the image ``val/confusion``."""
        import matplotlib.pyplot as plt
        import wandb

        from tlf.plots.confusion import confusion_figure
        figure = confusion_figure(matrix, self.request.classes, f"validation, epoch {epoch}")
        try:
            self.run.log({"epoch": epoch, "val/confusion": wandb.Image(figure)})
        finally:
            plt.close(figure)

    def finish(self, summary: dict[str, Any] | None, status: str) -> None:
        if summary is not None:
            for path in run_files(self.request.run_dir):
                self.run.save(str(path), base_path=str(self.request.run_dir), policy="now")
            best = summary.get("best_val_accuracy")
            if best is not None:
                self.run.summary["best_val_accuracy"] = float(best)
        self.run.finish(exit_code=0 if status == "finished" else 1)
