"""Multi-label metrics in numpy: average precision, F1 at thresholds, exact-set accuracy, and the
per-class thresholds tuned on the validation split.

Average precision is written here (a dozen lines) rather than taken from scikit-learn, which tlf
does not depend on (it would bring scipy and joblib for one function). It is scikit-learn's
definition, ``AP = sum_n (R_n - R_{n-1}) P_n`` over the distinct scores from the highest down
(no interpolation; tied scores form one threshold), and the same function serves the binned
scores the training loop sums over processes (:func:`average_precision_binned`).
"""
from __future__ import annotations

import numpy as np

from tlf.task_outputs import DEFAULT_THRESHOLD, sigmoid

THRESHOLD_RULE = ("per class, the threshold that maximises the class's F1 on the validation split: halfway "
                  "between the lowest probability it keeps and the next one below (ties: the higher threshold); "
                  f"{DEFAULT_THRESHOLD} for a class without validation positives")


def step_ap(positives: np.ndarray, negatives: np.ndarray) -> float:
    """AP from the positives and negatives at each threshold, highest threshold first; NaN without positives."""
    tp, fp = np.cumsum(positives, dtype=np.float64), np.cumsum(negatives, dtype=np.float64)
    if len(tp) == 0 or tp[-1] == 0:
        return float("nan")
    precision = tp / np.maximum(tp + fp, 1e-12)
    return float((positives / tp[-1] * precision).sum())


def _counts_by_score(scores: np.ndarray, truth: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The distinct scores from the highest down, and the positives and negatives at each."""
    values, inverse = np.unique(-scores, return_inverse=True)
    positives = np.bincount(inverse, weights=truth.astype(np.float64), minlength=len(values))
    negatives = np.bincount(inverse, minlength=len(values)) - positives
    return -values, positives, negatives


def average_precision(scores: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Per-class AP of N x C ``scores`` against N x C multi-hot ``truth`` (NaN for a class without positives)."""
    return np.array([step_ap(*_counts_by_score(scores[:, c], truth[:, c])[1:]) for c in range(scores.shape[1])])


def average_precision_binned(histogram: np.ndarray) -> np.ndarray:
    """Per-class AP from a 2 x C x B histogram of (positive, negative) counts over score bins, lowest bin first."""
    return np.array([step_ap(histogram[0, c, ::-1], histogram[1, c, ::-1]) for c in range(histogram.shape[1])])


def pr_curve(scores: np.ndarray, truth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Recall (rising) and precision of one class at each distinct score, highest score first."""
    _, positives, negatives = _counts_by_score(scores, truth)
    tp, fp = np.cumsum(positives), np.cumsum(negatives)
    return tp / max(tp[-1], 1e-12), tp / np.maximum(tp + fp, 1e-12)


def mean_ap(per_class: np.ndarray) -> float:
    """Macro mAP: the mean AP of the classes with positives (0 when none has any)."""
    present = per_class[~np.isnan(per_class)]
    return float(present.mean()) if len(present) else 0.0


def f1_scores(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """Per-class precision, recall and F1 from per-class counts, and the micro F1 over all of them."""
    precision = np.divide(tp, tp + fp, out=np.zeros(len(tp)), where=(tp + fp) > 0)
    recall = np.divide(tp, tp + fn, out=np.zeros(len(tp)), where=(tp + fn) > 0)
    f1 = np.divide(2 * tp, 2 * tp + fp + fn, out=np.zeros(len(tp)), where=(2 * tp + fp + fn) > 0)
    total = 2 * tp.sum() + fp.sum() + fn.sum()
    return precision, recall, f1, float(2 * tp.sum() / total) if total else 0.0


def tune_thresholds(probabilities: np.ndarray, truth: np.ndarray) -> list[float]:
    """One threshold per class by :data:`THRESHOLD_RULE`."""
    thresholds = []
    for c in range(probabilities.shape[1]):
        values, positives, negatives = _counts_by_score(probabilities[:, c], truth[:, c])
        if positives.sum() == 0:
            thresholds.append(DEFAULT_THRESHOLD)
            continue
        tp, fp = np.cumsum(positives), np.cumsum(negatives)
        f1 = 2 * tp / (tp + fp + positives.sum())  # keeping every score down to values[k]
        k = int(np.argmax(f1))  # the first maximum: the highest threshold
        below = values[k + 1] if k + 1 < len(values) else 0.0
        thresholds.append(float((values[k] + below) / 2))
    return thresholds


def multilabel_report(logits: np.ndarray, truth: np.ndarray, classes: list[str], thresholds: list[float]) -> dict:
    """mAP, micro/macro F1 and exact-set accuracy at ``thresholds``, and per class: AP, precision,
    recall, F1, positives and threshold."""
    probs, truth = sigmoid(logits), np.asarray(truth, dtype=bool)
    predicted = probs >= np.asarray(thresholds)
    tp, fp, fn = ((predicted & truth).sum(0), (predicted & ~truth).sum(0), (~predicted & truth).sum(0))
    precision, recall, f1, micro = f1_scores(tp.astype(float), fp.astype(float), fn.astype(float))
    ap = average_precision(probs, truth) if len(truth) else np.full(len(classes), np.nan)
    return {
        "map": mean_ap(ap), "micro_f1": micro, "macro_f1": float(f1.mean()),
        "accuracy": float((predicted == truth).all(axis=1).mean()) if len(truth) else 0.0,  # exact-set accuracy
        "images": int(len(truth)), "mean_labels": float(truth.sum(1).mean()) if len(truth) else 0.0,
        "per_class": [{"class": c, "ap": None if np.isnan(a) else float(a), "precision": float(p), "recall": float(r),
                       "f1": float(f), "support": int(s), "threshold": float(t)}
                      for c, a, p, r, f, s, t in zip(classes, ap, precision, recall, f1, truth.sum(0), thresholds)],
        "thresholds": [float(t) for t in thresholds], "threshold_rule": THRESHOLD_RULE,
    }
