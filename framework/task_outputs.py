"""What a model's logits mean, per built-in task, in numpy alone: the one definition that
``tlf.runtime`` (torch-free), ``tlf predict``, ``tlf serve`` and the export's parity gate share.

``single-label``: softmax over the classes, the prediction is the top classes. ``multi-label``:
an independent sigmoid per class, the prediction is the set of classes whose probability
reaches that class's threshold (``tlf.thresholds``, tuned on the validation split).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from .errors import TlfError

TASKS = ("single-label", "multi-label")  # the tasks an export may name (metadata tlf.task)
DEFAULT_THRESHOLD = 0.5


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax in float64."""
    z = np.asarray(logits, dtype=np.float64).copy()
    z -= z.max(axis=1, keepdims=True)
    np.exp(z, out=z)
    return z / z.sum(axis=1, keepdims=True)


def sigmoid(logits: np.ndarray) -> np.ndarray:
    """Element-wise logistic function in float64 (no overflow for large |logits|)."""
    z = np.asarray(logits, dtype=np.float64)
    return np.exp(-np.logaddexp(0.0, -z))


def probabilities(task: str, logits: np.ndarray) -> np.ndarray:
    """The task's probabilities of ``logits`` (N x C): softmax or per-class sigmoid."""
    if task == "multi-label":
        return sigmoid(logits)
    if task == "single-label":
        return softmax(logits)
    raise TlfError(f"unknown task {task!r} in the model's metadata",
                   hint=f"tlf.runtime knows {', '.join(TASKS)}; re-export the model with 'tlf export RUN_DIR'")


def label_sets(probs: np.ndarray, thresholds: Sequence[float] | float) -> np.ndarray:
    """Multi-hot N x C: the classes whose probability reaches its threshold (one per class, or one for all)."""
    return np.asarray(probs) >= np.asarray(thresholds, dtype=np.float64)


def checked_thresholds(thresholds: object, classes: int, source: str) -> list[float]:
    """``thresholds`` as one float in [0, 1] per class (a model's ``tlf.thresholds``); missing: 0.5 each."""
    if thresholds is None:
        return [DEFAULT_THRESHOLD] * classes
    if (not isinstance(thresholds, list) or len(thresholds) != classes
            or not all(isinstance(t, (int, float)) and 0.0 <= t <= 1.0 for t in thresholds)):
        raise TlfError(f"{source}: metadata 'tlf.thresholds' must list one probability in [0, 1] per class "
                       f"({classes})", hint="re-export the model with 'tlf export RUN_DIR'")
    return [float(t) for t in thresholds]
