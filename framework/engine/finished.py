"""What ``tlf.train`` returns: the run, shown in a notebook as its summary and curves."""
from __future__ import annotations

import dataclasses

from .training_run import TrainingRun


class FinishedRun(TrainingRun):
    """A :class:`~tlf.engine.training_run.TrainingRun` that Jupyter displays as its summary table
    and training curves (``_repr_html_``)."""

    @classmethod
    def of(cls, run: TrainingRun) -> FinishedRun:
        return cls(**{field.name: getattr(run, field.name) for field in dataclasses.fields(run)})

    def _repr_html_(self) -> str:
        from .run_view import run_html
        return run_html(self.directory, self.summary)
