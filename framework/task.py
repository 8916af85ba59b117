"""The task contract: what a run learns to predict, as a plugin kind (``tlf_register_tasks``,
:class:`tlf.specs.TaskSpec`, ``--task NAME``).

A :class:`Task` decides everything that depends on the kind of label: the loss and the
target format it takes, the metrics of an epoch (training and validation) and which one
picks the best checkpoint, the head's output activation at inference (export metadata
``tlf.task``, :mod:`tlf.runtime`), and what a prediction is. The built-in ``single-label``
task (``plugins/tasks``) is one class per image, softmax, cross-entropy, accuracy. The
loop (:mod:`tlf.engine.trainer`) only calls these methods, so another task (multi-label:
sigmoid, binary cross-entropy, mAP) plugs in without touching it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence


@dataclass(frozen=True)
class TaskRequest:
    """What a task's factory gets: the run's classes."""

    classes: Sequence[str]


class Meter:
    """Sums over an epoch's training batches (one tensor, so torch.distributed reduces it in one call)."""

    def add(self, logits: Any, targets: Any, loss: Any) -> None:
        """One batch: its logits, its targets (before batch-level augmentation) and its detached mean loss."""
        raise NotImplementedError

    def result(self, reduce: Callable[[Any], Any]) -> tuple[dict[str, float], float]:
        """The epoch's metrics (``loss`` and the task's ``metric`` at least) after ``reduce``
        (the sum over ranks), and the number of samples counted."""
        raise NotImplementedError


class Task:
    """One kind of prediction. Subclass it, set the class attributes, implement the methods."""

    name: str = ""
    metric: str = ""  # the best-checkpoint criterion: the row's ``val_<metric>`` (higher is better)
    metric_label: str = ""  # in words, for messages ("val accuracy")
    activation: str = ""  # the head's output activation at inference: "softmax", "sigmoid"

    def criterion(self, class_weights: Sequence[float] | None, label_smoothing: float, device: Any) -> Callable:
        """The training loss ``criterion(logits, targets)``."""
        raise NotImplementedError

    def meter(self, device: Any) -> Meter:
        """A fresh training :class:`Meter` for one epoch."""
        raise NotImplementedError

    def validation_sums(self, logits: Any, labels: Any) -> dict[str, Any]:
        """Summable tensors of one process's validation logits and labels (reduced over ranks by the loop)."""
        raise NotImplementedError

    def validation_metrics(self, sums: dict[str, Any]) -> dict[str, Any]:
        """The validation metrics from the reduced sums: ``loss``, ``<metric>``, and what the
        loggers and the report show (``confusion`` for single-label)."""
        raise NotImplementedError

    def best_of(self, row: dict[str, Any]) -> tuple[float, str]:
        """An epoch's best criterion value and whose weights it is: ``raw`` or ``ema`` (raw on a tie)."""
        raw, ema = row[f"val_{self.metric}"], row.get(f"ema_val_{self.metric}", -1.0)
        return (ema, "ema") if ema > raw else (raw, "raw")
