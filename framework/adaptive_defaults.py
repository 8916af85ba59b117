"""Defaults that hold on any dataset size: what a run gets for the settings it left unset
that depend on the data (``epochs``) or on what is new in the model (``head_lr_scale``).

- **epochs**: the policy's number of epochs, raised on a small dataset until the run
  makes at least the policy's ``min_steps`` optimizer steps (300), and then to at most
  :data:`MAX_EPOCHS_FACTOR` times the policy's number (every epoch is also a validation
  pass, which on a tiny training set costs more than the epoch itself). Never below the
  policy's number, so large datasets train as before. A task may raise the minimum
  (:attr:`tlf.task.Task.defaults` ``min_steps``; multi-label 1800), never lower it.
- **head_lr_scale**: the new head's lr over the pretrained stages' lr (fastai's head/body
  split): the policy's ``head_lr_scale`` (``init`` 10, ``partial`` 3, others 1). A freshly
  initialised head needs a larger step than weights that are already good; as a multiplier
  of one parameter group, every schedule keeps the ratio.

A value given explicitly (flag, config file, API) is never changed. :func:`adapt` is the
rule of the plan's data step (:meth:`tlf.plan.Resolution.with_data`), taken once the run's
training loader exists; the chosen values go into the plan (config.yaml) and the reasons
into summary.json.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from .config import RunConfig

MAX_EPOCHS_FACTOR = 4


@dataclass(frozen=True)
class Choice:
    """One default chosen for a run: the value, the policy's fixed number, and why."""

    setting: str
    value: float | int | str
    policy_default: float | int | str | None
    why: str

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def adaptive_epochs(policy_epochs: int, min_steps: int, steps_per_epoch: int) -> tuple[int, str]:
    """Epochs for ``steps_per_epoch`` optimizer steps an epoch, and the reason in words."""
    wanted = math.ceil(min_steps / max(steps_per_epoch, 1))
    cap = MAX_EPOCHS_FACTOR * policy_epochs
    epochs = min(max(policy_epochs, wanted), cap)
    steps = f"{steps_per_epoch} optimizer step(s) an epoch"
    if epochs == policy_epochs:
        return epochs, (f"the policy's {policy_epochs}: {steps} make {policy_epochs * steps_per_epoch} steps, "
                        f"at least {min_steps}")
    if epochs < wanted:
        return epochs, (f"raised from the policy's {policy_epochs} toward {min_steps} optimizer steps ({steps}), "
                        f"capped at {MAX_EPOCHS_FACTOR}x the policy's epochs: {epochs * steps_per_epoch} steps")
    return epochs, f"raised from the policy's {policy_epochs} to make at least {min_steps} optimizer steps ({steps})"


def adapt(plan: RunConfig, policy_defaults: dict[str, Any], steps_per_epoch: int,
          task_steps: tuple[int, str] | None = None) -> tuple[RunConfig, list[Choice]]:
    """``plan`` with its unset ``epochs`` and ``head_lr_scale`` chosen, and the choices made.
    ``task_steps``: the task's minimum of optimizer steps and why (:attr:`tlf.task.Task.defaults`),
    taken where it is above the policy's."""
    choices: list[Choice] = []
    changes: dict[str, Any] = {}
    if plan.epochs is None:
        default, min_steps = int(policy_defaults["epochs"]), int(policy_defaults["min_steps"])
        raised = task_steps is not None and task_steps[0] > min_steps
        epochs, why = adaptive_epochs(default, task_steps[0] if raised else min_steps, steps_per_epoch)
        changes["epochs"] = epochs
        choices.append(Choice("epochs", epochs, default, f"{why}; {task_steps[1]}" if raised else why))
    if plan.head_lr_scale is None:
        scale = float(policy_defaults["head_lr_scale"])
        why = ("the policy's: one lr for every part" if scale == 1 else
               f"the policy's: the new head trains at {scale:g}x the pretrained stages' lr")
        changes["head_lr_scale"] = scale
        choices.append(Choice("head_lr_scale", scale, scale, why))
    return (dataclasses.replace(plan, **changes).checked() if changes else plan), choices


def describe(choices: list[Choice], train_images: int) -> str:
    """One line for the start of a run."""
    parts = [f"{c.setting} {c.value if isinstance(c.value, str) else format(c.value, 'g')} ({c.why})" for c in choices]
    return f"defaults for {train_images} training images: " + "; ".join(parts)
