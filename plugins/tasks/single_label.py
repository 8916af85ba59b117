"""``single-label``: each image has exactly one class (integer class indices as targets)."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Sequence

import torch
from torch import nn

from tlf.task import Meter, ReportSection, Task, TaskRequest


class AccuracyMeter(Meter):
    """Loss x images, correct predictions and images of an epoch's training batches (float64)."""

    def __init__(self, device: Any) -> None:
        self.sums = torch.zeros(3, device=device, dtype=torch.float64)

    def add(self, logits: torch.Tensor, targets: torch.Tensor, loss: torch.Tensor) -> None:
        n = targets.shape[0]
        self.sums[0] += loss * n
        self.sums[1] += (logits.argmax(1) == targets).sum()
        self.sums[2] += n  # a Python number: no host-to-device copy

    def result(self, reduce: Callable[[torch.Tensor], torch.Tensor]) -> tuple[dict[str, float], float]:
        loss_sum, correct, count = reduce(self.sums).tolist()
        return {"loss": loss_sum / max(count, 1), "acc": correct / max(count, 1)}, count


class SingleLabel(Task):
    """Softmax over the classes, cross-entropy (with class weights and label smoothing),
    accuracy; the confusion matrix for the loggers and the report."""

    name = "single-label"
    metric = "acc"
    metric_label = "val accuracy"
    activation = "softmax"

    def __init__(self, request: TaskRequest) -> None:
        self.classes = list(request.classes)

    def criterion(self, class_weights: Sequence[float] | None, label_smoothing: float, device: Any) -> nn.Module:
        weight = None if class_weights is None else torch.tensor(class_weights, dtype=torch.float32, device=device)
        return nn.CrossEntropyLoss(weight=weight, label_smoothing=label_smoothing)

    def meter(self, device: Any) -> AccuracyMeter:
        return AccuracyMeter(device)

    def validation_sums(self, logits: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        n = len(self.classes)
        sums = torch.zeros(3, dtype=torch.float64)
        confusion = torch.zeros(n * n, dtype=torch.int64)  # [true * n + predicted]
        if len(labels):
            sums += torch.tensor([nn.functional.cross_entropy(logits, labels, reduction="sum").item(),
                                  (logits.argmax(1) == labels).sum().item(), len(labels)], dtype=torch.float64)
            confusion += torch.bincount(labels * n + logits.argmax(1), minlength=n * n)
        return {"sums": sums, "confusion": confusion}

    def validation_metrics(self, sums: dict[str, torch.Tensor]) -> dict[str, Any]:
        loss_sum, correct, count = sums["sums"].tolist()
        n = len(self.classes)
        return {"loss": loss_sum / count if count else float("nan"), "acc": correct / count if count else 0.0,
                "confusion": sums["confusion"].reshape(n, n)}

    # ---- downstream: tlf.engine.metrics, tlf.insight.evaluation and the report's sections ----
    def evaluation_report(self, logits: Any, labels: Any, classes: list[str], top_k: int,
                          decision: dict[str, Any]) -> dict[str, Any]:
        from tlf.engine.metrics import classification_report
        return classification_report(logits, labels, classes, top_k=top_k)

    def analyse(self, report: dict, logits: Any, labels: Any, images: Any, splits: Any, options: Any,
                out: Path | None, model: Any, transform: Callable | None, to_input: Callable | None) -> None:
        from tlf.insight.evaluation import analyse
        analyse(report, logits, labels, images, splits, options, out=out, model=model, transform=transform,
                to_input=to_input)

    def evaluation_figures(self, report: dict, classes: list[str], out: Path, title: str) -> None:
        from tlf.plots.confusion import plot_confusion
        plot_confusion(report["confusion_matrix"], classes, out / "confusion.png", title=title)

    def report_sections(self, evaluation: dict, run_dir: Path) -> list[ReportSection]:
        from tlf.insight.single_label_report import report_sections
        return report_sections(evaluation, run_dir)
