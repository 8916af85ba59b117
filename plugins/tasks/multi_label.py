"""``multi-label``: each image shows a set of classes (multi-hot float targets, one 0/1 per class).

A sigmoid per class and binary cross-entropy with logits (``--class-weights auto``: the loss's
``pos_weight``, negatives over positives of each class in the training split; label smoothing
as timm's ``BinaryCrossEntropy``: targets ``1 - s + s/C`` and ``s/C``); macro mAP picks the best
checkpoint. The epoch's metrics are sums, so torch.distributed adds them over processes: the
loss, exact-set matches and per-class TP/FP/FN at probability 0.5, and per class a histogram of
the logits of positives and of negatives (:data:`BINS` bins over [-:data:`LIMIT`, :data:`LIMIT`]),
from which the mAP is computed (``tlf evaluate`` computes it from the exact scores). At the end
of a run the per-class thresholds are tuned on the best checkpoint's validation logits
(:data:`~tlf.plugins.tasks.multi_label_metrics.THRESHOLD_RULE`).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Sequence

import torch
from torch import nn

from tlf.errors import TlfError
from tlf.task import Meter, ReportSection, Task, TaskDefault, TaskRequest
from tlf.task_outputs import DEFAULT_THRESHOLD, sigmoid

from .multi_label_metrics import (THRESHOLD_RULE, average_precision_binned, f1_scores, mean_ap, multilabel_report,
                                  tune_thresholds)

BINS, LIMIT = 1024, 16.0  # logit bins of the epoch's mAP: 1/32 logit wide; beyond +-16 the sigmoid is 1 or 0


def _sums(logits: torch.Tensor, targets: torch.Tensor, loss_sum: torch.Tensor | float) -> dict[str, torch.Tensor]:
    """The summable figures of a batch (or a process's validation set), float64 on the logits' device."""
    logits, truth = logits.detach().float(), targets > 0.5
    n, classes = truth.shape
    predicted = logits > 0  # probability above 0.5
    counts = torch.stack([(predicted & truth).sum(0), (predicted & ~truth).sum(0), (~predicted & truth).sum(0)])
    bins = ((logits.clamp(-LIMIT, LIMIT) + LIMIT) * ((BINS - 1) / (2 * LIMIT))).round().long()
    flat = bins + torch.arange(classes, device=logits.device) * BINS
    histogram = torch.stack([torch.bincount(flat[truth], minlength=classes * BINS),
                             torch.bincount(flat[~truth], minlength=classes * BINS)])
    scalars = torch.stack([torch.as_tensor(loss_sum, dtype=torch.float64, device=logits.device),
                           (predicted == truth).all(1).sum().double(), torch.tensor(float(n), dtype=torch.float64,
                                                                                   device=logits.device)])
    return {"sums": scalars, "counts": counts.double(), "histogram": histogram.double()}


def _metrics(sums: dict[str, torch.Tensor]) -> dict[str, float]:
    loss_sum, exact, count = sums["sums"].tolist()
    tp, fp, fn = sums["counts"].cpu().numpy()
    _, _, f1, micro = f1_scores(tp, fp, fn)
    classes = sums["counts"].shape[1]
    histogram = sums["histogram"].cpu().numpy().reshape(2, classes, BINS)
    return {"loss": loss_sum / count if count else float("nan"), "map": mean_ap(average_precision_binned(histogram)),
            "acc": exact / count if count else 0.0, "micro_f1": micro, "macro_f1": float(f1.mean())}


class SetMeter(Meter):
    """The epoch's training sums (:func:`_sums`), added batch by batch on the device."""

    def __init__(self, device: Any) -> None:
        self.device, self.sums = device, None

    def add(self, logits: torch.Tensor, targets: torch.Tensor, loss: torch.Tensor) -> None:
        batch = _sums(logits, targets, loss.detach().double() * targets.shape[0])
        self.sums = batch if self.sums is None else {k: v + batch[k] for k, v in self.sums.items()}

    def result(self, reduce: Callable[[torch.Tensor], torch.Tensor]) -> tuple[dict[str, float], float]:
        if self.sums is None:
            return {"loss": float("nan"), "map": 0.0, "acc": 0.0, "micro_f1": 0.0, "macro_f1": 0.0}, 0.0
        flat = reduce(torch.cat([v.flatten() for v in self.sums.values()]))
        sizes = [v.numel() for v in self.sums.values()]
        reduced = {k: part.view(v.shape) for (k, v), part in zip(self.sums.items(), flat.split(sizes))}
        return _metrics(reduced), float(reduced["sums"][2])


class SmoothedBCE(nn.Module):
    """Binary cross-entropy with logits on multi-hot targets, smoothed and weighted per class."""

    def __init__(self, pos_weight: torch.Tensor | None, smoothing: float) -> None:
        super().__init__()
        self.loss = nn.BCEWithLogitsLoss(pos_weight=pos_weight)
        self.smoothing = smoothing

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        targets = targets.float()
        if self.smoothing:
            off = self.smoothing / targets.shape[1]
            targets = targets * (1.0 - self.smoothing) + off
        return self.loss(logits, targets)


class MultiLabel(Task):
    """Sigmoid per class, binary cross-entropy, macro mAP; per-class thresholds tuned on validation."""

    name = "multi-label"
    metric = "map"
    metric_label = "val mAP"
    activation = "sigmoid"
    # measured on the flower mosaics (docs/multi-label.md, "Defaults for label sets"): a head on frozen
    # features is under-fitted at the single-label defaults (its validation loss falls to the last epoch)
    defaults = {
        "min_steps": TaskDefault(1800, "each class is a binary problem whose evidence is a share of the pooled "
                                       "features of an image with several objects: its head needs more steps"),
        "dropout": TaskDefault(0.0, "dropping pooled features drops evidence of every object in the image; "
                                    "the head under-fits rather than over-fits"),
        "label_smoothing": TaskDefault(0.0, "each class is judged by how it ranks the images (mAP), with its own "
                                            "tuned threshold: smoothed targets only cap the margins"),
        "augment": TaskDefault("flip", "a random crop can cut a labelled object out of the image while its label "
                                       "stays on; a flip keeps every object in view"),
    }

    def __init__(self, request: TaskRequest) -> None:
        self.classes = list(request.classes)

    def criterion(self, class_weights: Sequence[float] | None, label_smoothing: float, device: Any) -> nn.Module:
        weight = None if class_weights is None else torch.tensor(class_weights, dtype=torch.float32, device=device)
        return SmoothedBCE(weight, label_smoothing)

    def meter(self, device: Any) -> SetMeter:
        return SetMeter(device)

    def validation_sums(self, logits: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        loss = nn.functional.binary_cross_entropy_with_logits(logits.float(), labels.float(), reduction="sum")
        return {k: v.cpu() for k, v in _sums(logits, labels, loss.item() / max(labels.shape[1], 1)).items()}

    def validation_metrics(self, sums: dict[str, torch.Tensor]) -> dict[str, Any]:
        return _metrics(sums)

    # ---- downstream ---------------------------------------------------------------------
    def decision(self, logits: Any, labels: Any) -> dict[str, Any]:
        if logits is None:
            return {"thresholds": None, "threshold_rule": f"not tuned (no validation logits in this process): "
                                                          f"{DEFAULT_THRESHOLD} each until 'tlf evaluate' tunes them"}
        probs = sigmoid(logits.float().numpy())  # float64, as tlf evaluate and tlf.runtime compute them
        return {"thresholds": tune_thresholds(probs, labels.numpy() > 0.5), "threshold_rule": THRESHOLD_RULE}

    def evaluation_report(self, logits: Any, labels: Any, classes: list[str], top_k: int,
                          decision: dict[str, Any]) -> dict[str, Any]:
        thresholds = decision.get("thresholds") or [DEFAULT_THRESHOLD] * len(classes)
        return {"task": self.name, **multilabel_report(logits, labels, classes, thresholds)}

    def analyse(self, report: dict, logits: Any, labels: Any, images: Any, splits: Any, options: Any,
                out: Path | None, model: Any, transform: Callable | None, to_input: Callable | None) -> None:
        from .multi_label_insight import analyse
        analyse(report, logits, labels, images, splits, options, out, model, transform, to_input)

    def evaluation_figures(self, report: dict, classes: list[str], out: Path, title: str) -> None:
        pass  # pr_curves.png needs the scores: analyse draws it

    def report_sections(self, evaluation: dict, run_dir: Path) -> list[ReportSection]:
        from .multi_label_insight import report_sections
        return report_sections(evaluation, run_dir)

    def export_metadata(self, summary: dict[str, Any]) -> dict[str, Any]:
        thresholds = summary.get("thresholds")
        if not thresholds:  # trained under torchrun, or resumed without improving: not tuned yet
            raise TlfError(f"{summary.get('run_dir') or 'the run'} has no thresholds tuned on validation yet",
                           hint="run 'tlf evaluate RUN_DIR' first: it tunes them on the best checkpoint and keeps them")
        return {"task": self.name, "thresholds": [float(t) for t in thresholds]}


__all__ = ["MultiLabel"]
