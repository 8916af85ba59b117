"""The ``mlflow`` logger, on ``MlflowClient`` (no global active run, so several runs in one
process, as in ``tlf compare`` and ``tlf tune``, each get their own).

Where: ``mlflow:URI``, else ``MLFLOW_TRACKING_URI``, else an embedded SQLite store next to
the runs (``OUT/mlflow.db``, artifacts in ``OUT/mlartifacts``): no server needed, and
``mlflow ui --backend-store-uri sqlite:///OUT/mlflow.db`` shows it. The experiment is
``MLFLOW_EXPERIMENT_NAME``, else the dataset's name.

The MLflow run's id is kept in the run directory (``mlflow.json``); a resumed run logs to
the same MLflow run, and only the epochs that run has not recorded yet.
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from tlf.safe_files import atomic_write
from tlf.tracking import Logger, LoggerRequest, run_files

RUN_FILE = "mlflow.json"
TAGS = ("dataset", "backbone", "policy")
CONFUSION_DIR = "confusion"  # artifacts: each epoch's validation confusion matrix
STATUS = {"finished": "FINISHED", "failed": "FAILED", "killed": "KILLED"}


def default_uri(out: Path) -> str:
    """The embedded store: a SQLite file in the runs' folder."""
    return f"sqlite:///{(out / 'mlflow.db').resolve()}"


class MlflowLogger(Logger):
    """Params (the resolved config), tags, per-epoch metrics, each epoch's validation confusion
    matrix and the run's files as artifacts."""

    def __init__(self, request: LoggerRequest, uri: str | None = None) -> None:
        from mlflow import MlflowClient
        self.request = request
        record = request.run_dir / RUN_FILE
        earlier = json.loads(record.read_text()) if request.resumed and record.is_file() else None
        out = request.run_dir.parent
        embedded = default_uri(out)
        self.uri = (earlier or {}).get("tracking_uri") or uri or os.environ.get("MLFLOW_TRACKING_URI") or embedded
        self.client = MlflowClient(self.uri)
        if earlier:
            self.run_id = earlier["run_id"]
            self.client.update_run(self.run_id, status="RUNNING")
            done = {m.step for m in self.client.get_metric_history(self.run_id, "val_acc")}
            for row in request.history:  # epochs the interrupted process checkpointed but did not log
                if row["epoch"] not in done:
                    self.log_epoch(0, row)
            return
        experiment = self._experiment(out if self.uri == embedded else None)
        config = request.config
        tags = {key: str(config[key]) for key in TAGS if config.get(key) is not None}
        tags["tlf.run_dir"] = str(request.run_dir.resolve())
        run = self.client.create_run(experiment, run_name=request.run_dir.name, tags=tags)
        self.run_id = run.info.run_id
        text = json.dumps({"tracking_uri": self.uri, "run_id": self.run_id}) + "\n"
        atomic_write(record, lambda f: f.write(text))
        from mlflow.entities import Param
        params = [Param(key, str(value)) for key, value in config.items()]
        for start in range(0, len(params), 100):  # MLflow takes at most 100 params per batch
            self.client.log_batch(self.run_id, params=params[start:start + 100])

    def _experiment(self, out: Path | None) -> str:
        from mlflow.exceptions import MlflowException
        name = os.environ.get("MLFLOW_EXPERIMENT_NAME") or str(self.request.config.get("dataset") or "tlf")
        found = self.client.get_experiment_by_name(name)
        if found is not None:
            return found.experiment_id
        location = (out / "mlartifacts").resolve().as_uri() if out is not None else None
        try:
            return self.client.create_experiment(name, artifact_location=location)
        except MlflowException:  # another process created it first
            return self.client.get_experiment_by_name(name).experiment_id

    def log_epoch(self, step: int, row: dict[str, Any]) -> None:
        from mlflow.entities import Metric
        now = int(time.time() * 1000)
        metrics = [Metric(key, float(value), now, int(row["epoch"])) for key, value in row.items()
                   if key != "epoch" and isinstance(value, (int, float))]
        self.client.log_batch(self.run_id, metrics=metrics)

    def log_confusion(self, step: int, epoch: int, matrix: list[list[int]]) -> None:
        """The epoch's validation confusion matrix as artifacts ``confusion/epoch-NNN.png`` and
        ``.json`` (classes and counts); an epoch trained again after a resume overwrites its own."""
        import matplotlib.pyplot as plt

        from tlf.plots.confusion import confusion_figure
        name = f"{CONFUSION_DIR}/epoch-{epoch:03d}"
        self.client.log_dict(self.run_id, {"epoch": epoch, "classes": self.request.classes, "matrix": matrix},
                             f"{name}.json")
        figure = confusion_figure(matrix, self.request.classes, f"validation, epoch {epoch}")
        try:
            self.client.log_figure(self.run_id, figure, f"{name}.png")
        finally:
            plt.close(figure)

    def finish(self, summary: dict[str, Any] | None, status: str) -> None:
        if summary is not None:
            for path in run_files(self.request.run_dir):
                self.client.log_artifact(self.run_id, str(path))
            best = summary.get("best_val_accuracy")
            if best is not None:
                self.client.log_metric(self.run_id, "best_val_accuracy", float(best))
        self.client.set_terminated(self.run_id, STATUS.get(status, "FAILED"))
