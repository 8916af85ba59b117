"""The run directory: created (or claimed and repaired on ``--resume``) before training,
``last.pt`` at every epoch end and ``best.pt`` when the task's criterion improves, the
metrics files and curves, and summary.json at the end. Files are written atomically by the
main process; whatever order an interrupted run's writes landed in, a resume first brings
every file back to its last checkpoint."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tlf import messages
from tlf.engine import distributed as ddp
from tlf.engine.callback import Callback
from tlf.engine.loop_state import load_loop_state, loop_state
from tlf.plots.training import plot_curves
from tlf.rundir import PREPROCESSING_FILE, RESUME_KEYS, RunDirWriter, load_checkpoint, read_run_config


class Checkpointing(Callback):
    order = 60  # after the callbacks that change their state at an epoch's end, so last.pt holds it
    name = "checkpoint"

    def __init__(self, request: Any) -> None:
        self.resume_dir: Path | None = Path(request.resume_dir) if request.resume_dir is not None else None
        self.open_run_dir = request.open_run_dir
        self.run_dir: RunDirWriter | None = None
        if self.resume_dir is not None and request.is_main:
            self.run_dir = self._claim(self.resume_dir)

    @staticmethod
    def _claim(resume_dir: Path) -> RunDirWriter:
        """Lock the run directory to resume before anything reads or removes its files."""
        run_dir = RunDirWriter(resume_dir)
        run_dir.lock()
        for path in run_dir.remove_partial_files():
            messages.notice(f"removed {path.name}, left by the interrupted run")
        return run_dir

    def after_create(self, loop: Any) -> None:
        if self.resume_dir is not None:
            self._restore(loop)
        if self.open_run_dir:
            loop.run_dir = self._open(loop)
            loop.run.directory = loop.run_dir.path if loop.run_dir is not None else None

    def _restore(self, loop: Any) -> None:
        if not (self.resume_dir / "last.pt").exists():
            loop.report.info(f"{self.resume_dir} has no checkpoint yet (stopped during epoch 1): starting it again")
            return
        state = load_checkpoint(self.resume_dir, "last", map_location=str(loop.device), needs=RESUME_KEYS)
        load_loop_state(loop, state, self.resume_dir / "last.pt")

    def _open(self, loop: Any) -> RunDirWriter | None:
        if not loop.is_main:
            ddp.broadcast_object(None, loop.world)
            return None
        c = loop.config
        if self.resume_dir is not None:
            run_dir = self.run_dir
            self._repair(loop, run_dir)
            if read_run_config(self.resume_dir).epochs != c.epochs:  # resumed to more epochs
                run_dir.write_yaml("config.yaml", c.to_dict())
        else:
            import yaml
            run_dir = RunDirWriter.create(c.out, c.dataset, c.backbone, c.policy, c.name, files={
                "config.yaml": yaml.safe_dump(c.to_dict(), sort_keys=False),
                "classes.json": json.dumps(loop.parts.splits.classes, indent=2) + "\n",
                PREPROCESSING_FILE: json.dumps(loop.parts.preprocessing.to_dict(), indent=2) + "\n"})
            self.run_dir = run_dir
        ddp.broadcast_object(str(run_dir.path), loop.world)
        return run_dir

    def _repair(self, loop: Any, run_dir: RunDirWriter) -> None:
        """Bring every file of a resumed run to the state of its last checkpoint: the metrics files
        are rewritten from the checkpoint's history, and ``best.pt`` is restored when the history's
        best epoch is the last."""
        history = loop.history
        if not history:
            return
        if run_dir.read_metrics() != history:
            run_dir.write_metrics(history)
            self._plot(loop, run_dir)
            loop.report.info(f"repaired metrics.jsonl/.csv: {len(history)} epoch(s), from last.pt")
        best_row = loop.task.best_row(history)
        best_epoch = best_row["epoch"]
        have = run_dir.checkpoint_epoch("best")
        if have == best_epoch or (have is not None and have > loop.start_epoch):
            return  # current, or written by the epoch about to be trained again, which rewrites it
        if best_epoch == loop.start_epoch:
            weights = loop.task.best_of(best_row)[1]
            if weights != "raw":  # best.pt holds other weights (EMA), restored from last.pt into the loop
                state = load_checkpoint(run_dir.path, "last")
                run_dir.save_checkpoint("best", {**state, "model": loop.weights[weights].state_dict(), "weights": weights})
            else:
                run_dir.copy_checkpoint("last", "best")
            loop.report.info(f"repaired best.pt: epoch {best_epoch}, from last.pt")
        else:
            loop.report.warn(f"best.pt of epoch {best_epoch} is missing and cannot be rebuilt; "
                             f"best.pt will hold the next improvement (last.pt is complete)")

    def after_epoch(self, loop: Any) -> None:
        """last.pt, and best.pt when the epoch improved: its ``model`` holds the better of the
        validated weights (``weights`` says which), so evaluate and export use it as it is."""
        if not loop.is_main:
            return
        state = loop_state(loop, loop.epoch)
        if loop.improved:  # best before last: a failed or interrupted best.pt write leaves last.pt at the epoch
            weights = loop.task.best_of(loop.row)[1]  # before, so a resume trains this epoch again
            best = state if weights == "raw" else {**state, "model": loop.weights[weights].state_dict(), "weights": weights}
            self.run_dir.save_checkpoint("best", best)
        self.run_dir.save_checkpoint("last", state)
        self.run_dir.write_metrics(loop.history)
        self._plot(loop, self.run_dir)

    @staticmethod
    def _plot(loop: Any, run_dir: RunDirWriter) -> None:
        plot_curves(loop.history, run_dir.path / "curves.png",
                    title=f"{loop.config.dataset} · {loop.config.backbone} · {loop.policy.name}",
                    metric=loop.task.metric, name=loop.task.metric_label.removeprefix("val "))

    def after_fit(self, loop: Any) -> None:
        if loop.is_main and self.run_dir is not None:
            self.run_dir.write_json("summary.json", loop.summary)

    def close(self) -> None:
        if self.run_dir is not None:
            self.run_dir.unlock()
