"""What a model's logits mean, in numpy alone: the one definition that ``tlf.runtime``
(torch-free), ``tlf predict``, ``tlf serve`` and the export's parity gate share.

An export names its **output** (metadata ``tlf.output``: its task's
:attr:`~tlf.task.Task.activation`), so a model of any task plugin deploys by it:

- ``softmax``: softmax over the classes, the prediction is the top classes (``single-label``);
- ``sigmoid``: an independent sigmoid per class, the prediction is the set of classes whose
  probability reaches that class's threshold (``tlf.thresholds``, tuned on the validation
  split; 0.5 where the export states none) (``multi-label``).
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from .errors import TlfError

OUTPUTS = ("softmax", "sigmoid")  # the outputs an export may name (metadata tlf.output)
# the output of the exports made before tlf.output: their tlf.task's (none: single-label)
TASK_OUTPUTS = {"single-label": "softmax", "multi-label": "sigmoid"}
DEFAULT_THRESHOLD = 0.5


def output_of(metadata: Mapping[str, Any], source: str) -> str:
    """How the logits of the model whose ``tlf.*`` metadata is ``metadata`` read: one of :data:`OUTPUTS`."""
    output = metadata.get("output")
    if output is None:
        output = TASK_OUTPUTS.get(metadata.get("task") or "single-label")
    if output not in OUTPUTS:
        named = metadata.get("output") or metadata.get("task")
        raise TlfError(f"{source} gives {named!r} outputs, which tlf.runtime does not know",
                       hint=f"tlf.runtime reads {' and '.join(OUTPUTS)} outputs: re-export the model with "
                            f"'tlf export RUN_DIR' (its task's activation must be one of them)")
    return output


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


def probabilities(output: str, logits: np.ndarray) -> np.ndarray:
    """The probabilities of ``logits`` (N x C) for ``output`` (:data:`OUTPUTS`): softmax or per-class sigmoid."""
    if output == "sigmoid":
        return sigmoid(logits)
    if output == "softmax":
        return softmax(logits)
    raise ValueError(f"unknown output {output!r}: one of {', '.join(OUTPUTS)}")


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
