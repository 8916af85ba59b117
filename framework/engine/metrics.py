"""Classification metrics from logits and labels; a validation score's entries as metrics.jsonl keys."""
from __future__ import annotations

from typing import Any

import numpy as np


def row_entries(prefix: str, scores: dict[str, Any]) -> dict[str, float]:
    """The plain-number entries of a validation score, as metrics.jsonl keys (``val_loss``, ``val_acc``, ...)."""
    return {prefix + k: v for k, v in scores.items() if isinstance(v, (int, float))}


def confusion_matrix(labels: np.ndarray, predictions: np.ndarray, num_classes: int) -> np.ndarray:
    """``cm[true, predicted]`` counts."""
    return np.bincount(labels * num_classes + predictions, minlength=num_classes ** 2).reshape(num_classes, num_classes)


def top_k_accuracy(logits: np.ndarray, labels: np.ndarray, k: int) -> float:
    k = min(k, logits.shape[1])
    top = np.argpartition(-logits, k - 1, axis=1)[:, :k]
    return float((top == labels[:, None]).any(axis=1).mean())


def classification_report(logits: np.ndarray, labels: np.ndarray, classes: list[str], top_k: int = 5) -> dict:
    """Accuracy, balanced accuracy (the mean recall of the classes present), macro F1, top-k,
    per-class precision/recall/F1/support and the confusion matrix."""
    predictions = logits.argmax(axis=1)
    cm = confusion_matrix(labels, predictions, len(classes))
    tp = np.diag(cm).astype(float)
    precision = np.divide(tp, cm.sum(axis=0), out=np.zeros_like(tp), where=cm.sum(axis=0) > 0)
    recall = np.divide(tp, cm.sum(axis=1), out=np.zeros_like(tp), where=cm.sum(axis=1) > 0)
    f1 = np.divide(2 * precision * recall, precision + recall, out=np.zeros_like(tp), where=(precision + recall) > 0)
    return {
        "accuracy": float((predictions == labels).mean()) if len(labels) else 0.0,
        f"top{min(top_k, len(classes))}_accuracy": top_k_accuracy(logits, labels, top_k) if len(labels) else 0.0,
        "images": int(len(labels)),
        "per_class": [
            {"class": c, "precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
            for c, p, r, f, s in zip(classes, precision, recall, f1, cm.sum(axis=1))
        ],
        "balanced_accuracy": float(recall[cm.sum(axis=1) > 0].mean()) if len(labels) else 0.0,
        "macro_f1": float(f1.mean()),
        "confusion_matrix": cm.tolist(),
    }
