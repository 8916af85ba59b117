"""The run's task from its data when ``--task`` is not given: ``multi-label`` for label sets
(multi-hot labels, :attr:`tlf.data.Splits.multi_label`), ``single-label`` for one class per
image. A built-in task named explicitly must fit the data (a one-line error otherwise)."""
from __future__ import annotations

import dataclasses
from typing import Any

from .adaptive_defaults import Choice
from .config import RunConfig
from .errors import TlfError


def choose_task(plan: RunConfig, splits: Any) -> tuple[RunConfig, Choice | None]:
    """``plan`` with its task set (the one asked for, checked against the data, or the data's), and
    the choice made when the data picked ``multi-label`` (summary.json's ``defaults_chosen``)."""
    data = "multi-label" if splits.multi_label else "single-label"
    if plan.task is None:  # recorded when the data departs from the usual single-label
        chosen = (Choice("task", data, "single-label", "the dataset gives a set of labels per image")
                  if splits.multi_label else None)
        return dataclasses.replace(plan, task=data), chosen
    other = "single-label" if data == "multi-label" else "multi-label"
    if plan.task == other:
        given = "label sets" if splits.multi_label else "one class per image"
        raise TlfError(f"--task {plan.task} does not fit {splits.name}, which gives {given}",
                       hint=f"drop --task (tlf picks {data} from the data) or pass --task {data}")
    return plan, None
