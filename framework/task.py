"""The task contract: what a run learns to predict, as a plugin kind (``tlf_register_tasks``,
:class:`tlf.specs.TaskSpec`, ``--task NAME``).

A :class:`Task` decides everything that depends on the kind of label: the loss and the
target format it takes, the metrics of an epoch (training and validation) and which one
picks the best checkpoint, the head's output activation at inference (export metadata
``tlf.output``, by which :mod:`tlf.runtime` decodes), and what a prediction is. The built-in ``single-label``
task (``plugins/tasks``) is one class per image, softmax, cross-entropy, accuracy. The
loop (:mod:`tlf.engine.trainer`) only calls these methods, so another task (multi-label:
sigmoid, binary cross-entropy, mAP) plugs in without touching it.

Downstream of training the task decides too: what the run keeps for predicting besides its
weights (:meth:`Task.decision`: multi-label's per-class thresholds, in summary.json), what
``tlf evaluate`` computes, writes and draws (:meth:`Task.evaluation_report`,
:meth:`Task.analyse`, :meth:`Task.evaluation_figures`), what report.html shows
(:meth:`Task.report_sections`) and what an export says of itself (:meth:`Task.export_metadata`).
:mod:`tlf.runtime` and the export's parity gate are torch- and plugin-free: they decode by the
export's ``tlf.output``, the task's :attr:`Task.activation` (:mod:`tlf.task_outputs`: softmax,
or sigmoid and ``tlf.thresholds``), so any task's model deploys.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar, Mapping, Sequence


@dataclass(frozen=True)
class TaskRequest:
    """What a task's factory gets: the run's classes."""

    classes: Sequence[str]


@dataclass(frozen=True)
class TaskDefault:
    """A default a task states for the runs that leave the setting unset, and why (summary.json's
    ``defaults_chosen``): see :attr:`Task.defaults`."""

    value: float | int | str
    why: str


@dataclass(frozen=True)
class ReportSection:
    """One section of a run's report.html that the task adds: its anchor and title, a Jinja2
    template (autoescaped) and what it renders; ``before_metrics`` puts it above "Final metrics"."""

    id: str
    name: str
    template: str
    context: dict[str, Any] = field(default_factory=dict)
    before_metrics: bool = False


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
    # what the task changes of the defaults, only where the run leaves the setting unset (the plan's
    # tlf.plan.Resolution.with_task and with_data apply them): "min_steps", the fewest optimizer steps
    # (raised over the policy's, never lowered: tlf.adaptive_defaults), "label_smoothing", "dropout",
    # and "augment" (in place of the policy's default only where that augments: a live policy's)
    defaults: ClassVar[Mapping[str, TaskDefault]] = {}

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

    def best_row(self, history: Sequence[dict[str, Any]]) -> dict[str, Any]:
        """The epoch whose checkpoint is ``best.pt``: the first with the highest :meth:`best_of` ({} before any)."""
        return max(history, key=lambda row: self.best_of(row)[0]) if history else {}

    # ---- downstream of training: what is kept, evaluated, reported, exported ----------------
    def decision(self, logits: Any, labels: Any) -> dict[str, Any]:
        """What the run keeps for predicting besides its weights, from the best checkpoint's
        validation logits and labels (None when the run has none in this process): entries of
        summary.json (multi-label: ``thresholds``). Single-label keeps nothing."""
        return {}

    def evaluation_report(self, logits: Any, labels: Any, classes: list[str], top_k: int,
                          decision: dict[str, Any]) -> dict[str, Any]:
        """``tlf evaluate``'s figures (evaluation.json) from numpy logits and labels, with the
        run's :meth:`decision` entries."""
        raise NotImplementedError

    def analyse(self, report: dict, logits: Any, labels: Any, images: Any, splits: Any, options: Any,
                out: Path | None, model: Any, transform: Callable | None, to_input: Callable | None) -> None:
        """The per-image part of ``tlf evaluate``, added to ``report``; with ``out`` (the run
        directory) its files too (predictions.csv, galleries with Grad-CAM), named in ``report["files"]``."""
        raise NotImplementedError

    def evaluation_figures(self, report: dict, classes: list[str], out: Path, title: str) -> None:
        """The figures ``tlf evaluate`` writes beside evaluation.json (confusion.png for single-label)."""
        raise NotImplementedError

    def report_sections(self, evaluation: dict, run_dir: Path) -> list[ReportSection]:
        """What report.html shows of an evaluation (``evaluation``: evaluation.json)."""
        raise NotImplementedError

    def export_metadata(self, summary: dict[str, Any]) -> dict[str, Any]:
        """The export's ``tlf.*`` metadata entries of the task (``task``; multi-label ``thresholds``)
        from the run's summary.json."""
        return {"task": self.name}
