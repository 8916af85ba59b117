"""Per-image predictions and the error analysis built on them (fastai's ``most_confused`` and
top losses, per-class accuracy, likely label errors), from logits and labels alone."""
from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..safe_files import atomic_write


@dataclass
class Predictions:
    """One row per validation image, in the loader's order."""

    images: list[str]  # the image's path, or ``name[index]`` for in-memory datasets
    classes: list[str]
    labels: np.ndarray  # int64 N
    probabilities: np.ndarray  # float32 NxC (softmax)
    losses: np.ndarray  # float64 N, cross-entropy of the true class

    @classmethod
    def from_logits(cls, logits: np.ndarray, labels: np.ndarray, images: Sequence[str],
                    classes: list[str]) -> Predictions:
        logits = np.asarray(logits, dtype=np.float64)
        shifted = logits - logits.max(axis=1, keepdims=True) if len(logits) else logits
        log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        labels = np.asarray(labels, dtype=np.int64)
        losses = -log_probs[np.arange(len(labels)), labels] if len(labels) else np.zeros(0)
        return cls(list(images), list(classes), labels, np.exp(log_probs).astype(np.float32), losses)

    @property
    def predicted(self) -> np.ndarray:
        return self.probabilities.argmax(axis=1) if len(self.labels) else np.zeros(0, dtype=np.int64)

    @property
    def correct(self) -> np.ndarray:
        return self.predicted == self.labels

    def row(self, i: int) -> dict:
        p, t = int(self.predicted[i]), int(self.labels[i])
        return {"index": i, "image": self.images[i], "true": self.classes[t], "predicted": self.classes[p],
                "probability": float(self.probabilities[i, p]), "true_probability": float(self.probabilities[i, t]),
                "loss": float(self.losses[i]), "correct": bool(p == t)}

    def write_csv(self, path: Path) -> None:
        """predictions.csv: index, image, true, predicted, correct, loss, then ``p_<class>`` per class."""
        buf = io.StringIO()
        writer = csv.writer(buf)
        writer.writerow(["index", "image", "true", "predicted", "correct", "loss", *(f"p_{c}" for c in self.classes)])
        for i in range(len(self.labels)):
            r = self.row(i)
            writer.writerow([i, r["image"], r["true"], r["predicted"], int(r["correct"]), f"{r['loss']:.6g}",
                             *(f"{p:.6g}" for p in self.probabilities[i])])
        atomic_write(path, lambda f: f.write(buf.getvalue()), mode="w")

    def write_jsonl(self, path: Path) -> None:
        """predictions.jsonl: the same rows, one JSON object per image (probabilities by class)."""
        lines = [json.dumps({**self.row(i), "probabilities": dict(zip(self.classes, map(float, self.probabilities[i])))})
                 for i in range(len(self.labels))]
        atomic_write(path, lambda f: f.write("".join(line + "\n" for line in lines)))

    def top_losses(self, k: int) -> list[int]:
        """Indices of the ``k`` highest losses, highest first (ties: lower index first)."""
        order = np.lexsort((np.arange(len(self.losses)), -self.losses))
        return [int(i) for i in order[:k]]

    def most_confused(self, limit: int | None = None, min_count: int = 1) -> list[dict]:
        """(true, predicted, count) pairs of mistakes, most frequent first."""
        n = len(self.classes)
        wrong = ~self.correct
        counts = np.bincount(self.labels[wrong] * n + self.predicted[wrong], minlength=n * n)
        pairs = [(int(c), int(k // n), int(k % n)) for k, c in enumerate(counts) if c >= min_count]
        pairs.sort(key=lambda p: (-p[0], p[1], p[2]))
        return [{"true": self.classes[t], "predicted": self.classes[p], "count": c} for c, t, p in pairs[:limit]]

    def per_class_accuracy(self) -> list[dict]:
        """Accuracy on each class's own images (its recall), with the number of images."""
        rows = []
        for c, name in enumerate(self.classes):
            mine = self.labels == c
            rows.append({"class": name, "accuracy": float(self.correct[mine].mean()) if mine.any() else None,
                         "images": int(mine.sum())})
        return rows

    def confident_mistake(self, true: str, predicted: str) -> int:
        """The index of the most confident mistake of ``true`` taken for ``predicted``."""
        t, p = self.classes.index(true), self.classes.index(predicted)
        candidates = np.flatnonzero((self.labels == t) & (self.predicted == p))
        return int(candidates[np.argmax(self.probabilities[candidates, p])])

    def likely_label_errors(self, min_confidence: float) -> list[dict]:
        """Mistakes made with at least ``min_confidence``, highest loss first: the images whose
        label is most worth checking by hand."""
        wrong = np.flatnonzero(~self.correct & (self.probabilities.max(axis=1) >= min_confidence))
        return [self.row(int(i)) for i in wrong[np.lexsort((wrong, -self.losses[wrong]))]]


def write_predictions(predictions: Any, out: Path, jsonl: bool) -> list[str]:
    """predictions.csv (and predictions.jsonl when ``jsonl``) of per-image ``predictions`` (anything
    with ``write_csv`` and ``write_jsonl``: :class:`Predictions`, a multi-label task's) into ``out``;
    the names of the files written."""
    predictions.write_csv(out / "predictions.csv")
    if not jsonl:
        return ["predictions.csv"]
    predictions.write_jsonl(out / "predictions.jsonl")
    return ["predictions.csv", "predictions.jsonl"]


def write_label_errors(rows: list[dict], path: Path) -> None:
    """label_errors.csv: image, given label, predicted label, probabilities and loss."""
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["image", "label", "predicted", "probability", "label_probability", "loss", "index"])
    for r in rows:
        writer.writerow([r["image"], r["true"], r["predicted"], f"{r['probability']:.4f}",
                         f"{r['true_probability']:.4f}", f"{r['loss']:.4f}", r["index"]])
    atomic_write(path, lambda f: f.write(buf.getvalue()))
