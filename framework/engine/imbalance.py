"""Per-class loss weights (``--class-weights``) from the training labels or a file.
(``--sampler balanced`` is the loaders' job: :func:`tlf.data.loaders.balanced_weights`.)"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import TlfError

EFFECTIVE_BETA = 0.999  # Cui et al. 2019, "Class-Balanced Loss Based on Effective Number of Samples"


def class_counts(labels: np.ndarray, num_classes: int) -> np.ndarray:
    return np.bincount(np.asarray(labels, dtype=np.int64), minlength=num_classes)


def _normalised(weights: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Scaled so that the average weight over the training samples is 1 (the loss keeps its scale)."""
    return weights * counts.sum() / max(float((weights * counts).sum()), 1e-12)


def _from_file(path: Path, classes: list[str]) -> np.ndarray:
    from ..config_files import read_structured
    data = read_structured(path, "class weights", "write a mapping 'class: weight' (YAML or JSON) or a list, one weight per class")
    if isinstance(data, list):
        if len(data) != len(classes):
            raise TlfError(f"class weights {path} has {len(data)} weight(s) for {len(classes)} classes",
                           hint=f"give one weight per class, in the order {', '.join(classes)}")
        data = dict(zip(classes, data))
    if not isinstance(data, dict):
        raise TlfError(f"class weights {path} must be a mapping 'class: weight' or a list",
                       hint=f"e.g. {{{classes[0]!r}: 1.0, ...}}")
    missing = [c for c in classes if c not in data]
    extra = sorted(str(c) for c in data if c not in classes)
    if missing or extra:
        parts = ([f"missing {', '.join(missing)}"] if missing else []) + ([f"unknown {', '.join(extra)}"] if extra else [])
        raise TlfError(f"class weights {path} do not match the dataset's classes: {'; '.join(parts)}",
                       hint=f"give a weight for each of: {', '.join(classes)}")
    try:
        weights = np.array([float(data[c]) for c in classes])
    except (TypeError, ValueError):
        raise TlfError(f"class weights {path} hold a value that is not a number",
                       hint="every weight must be a number above 0") from None
    if not np.all(np.isfinite(weights)) or np.any(weights <= 0):
        raise TlfError(f"class weights {path} must all be finite numbers above 0",
                       hint="give every class a weight in (0, inf)")
    return weights


def class_weights(setting: str, labels: np.ndarray, classes: list[str]) -> np.ndarray | None:
    """Loss weight of each class for ``--class-weights setting``; None for ``none``.

    Multi-hot ``labels`` (multi-label data): the weights of each class's positives
    (:func:`_positive_weights`). Otherwise ``auto``: inverse frequency, ``effective``: (1 - beta) / (1 - beta ** n_c) with beta
    0.999, both scaled so the mean weight over the training samples is 1; a file: the
    user's weights as given.
    """
    if setting == "none":
        return None
    if np.ndim(labels) == 2:
        return _positive_weights(setting, labels, classes)
    counts = class_counts(labels, len(classes))
    present = np.maximum(counts, 1)  # a class without training images gets the largest weight
    if setting == "auto":
        return _normalised(1.0 / present, counts)
    if setting == "effective":
        return _normalised((1 - EFFECTIVE_BETA) / (1 - EFFECTIVE_BETA ** present), counts)
    return _from_file(Path(setting), classes)  # RunConfig.checked checked that it exists



def _positive_weights(setting: str, labels: np.ndarray, classes: list[str]) -> np.ndarray:
    """Multi-label: the weight of each class's positive examples in binary cross-entropy
    (``pos_weight``). ``auto``: the class's negatives over its positives in the training split
    (torch's recipe: a class on 1 image in 10 weighs its positives 9x); a file: the user's."""
    if setting == "effective":
        raise TlfError("--class-weights effective weighs one class per image; multi-label images have several",
                       hint="use --class-weights auto (negatives over positives per class) or a file of weights")
    if setting != "auto":
        return _from_file(Path(setting), classes)
    positives = np.asarray(labels, dtype=np.int64).sum(axis=0)
    return (len(labels) - positives) / np.maximum(positives, 1)
