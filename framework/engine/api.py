"""The Python API of training, mirroring the CLI: ``tlf.train(...)``, and :func:`lr_find` behind ``tlf lr-find``."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from .. import messages
from ..errors import RunInterrupted, TlfError
from ..config import RunConfig


def train(config: RunConfig | str | Path | None = None, *, resume: str | Path | None = None, quiet: bool = False,
          should_stop: Callable[[int, dict], bool] | None = None, **settings: Any):
    """Train one run and return it (:class:`tlf.engine.finished.FinishedRun`, with ``summary`` and
    ``directory``; a notebook shows it as its summary table and curves).

    ``config`` is a RunConfig or a YAML/JSON file; keyword ``settings`` override it
    (``tlf.train(dataset="flowers", policy="partial:conv5", epochs=5)``). ``resume``
    continues an interrupted run directory from its last checkpoint; with ``epochs`` above
    the planned number it continues to that many (the schedule is stretched to the new
    length: the rest of the run follows the schedule of a run planned that long). ``should_stop(epoch, row)``
    is asked after each epoch (``row`` is its line of metrics.jsonl, plus ``criterion``: the task's
    best-checkpoint figure of the epoch, e.g. val accuracy or mAP); True ends the run there,
    as early stopping does (``tlf tune`` prunes trials with it). Ctrl-C during training raises
    :class:`~tlf.errors.RunInterrupted` (a ``KeyboardInterrupt`` naming the run directory to resume).
    """
    from ..plan import plan_run

    plan = plan_run(config, settings, resume)  # checked before the engine (and its libraries) is imported
    from .finished import FinishedRun
    from .trainer import Trainer
    with messages.scope():  # the run's Reporter is the message channel while it runs
        trainer = Trainer(plan, resume_dir=Path(resume) if resume is not None else None, quiet=quiet,
                          should_stop=should_stop)
        try:
            trainer.fit()
        except KeyboardInterrupt as exc:
            raise RunInterrupted(trainer.run.directory, len(trainer.history), trainer.config.epochs) from exc
        finally:
            trainer.close()  # the run directory's lock
    return FinishedRun.of(trainer.run)



def lr_find(config: RunConfig | str | Path | None = None, *, plot: str | Path | None = None, steps: int = 200,
            quiet: bool = False, **settings: Any):
    """The lr range test for these settings (as :func:`train` takes them), without training:
    a :class:`tlf.engine.lr_find.LrFinding`; ``plot`` saves the loss-against-lr figure."""
    from .lr_find import find_lr
    from ..plots.training import plot_lr_find
    from .trainer import Trainer

    from ..plan import plan_run
    with messages.scope():  # the finder's Reporter is the message channel while it runs
        trainer = Trainer(plan_run(config, settings), quiet=quiet, open_run_dir=False)
        if trainer.world.distributed:
            raise TlfError("tlf lr-find runs in one process", hint="run it without torchrun")
        trainer.prepare()
        finding = find_lr(trainer, steps=steps)
    if plot is not None:
        plot_lr_find(finding, Path(plot))
    return finding
