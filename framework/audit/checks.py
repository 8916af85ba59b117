"""Per-image and per-class checks: outliers in embedding space, unreadable, tiny,
extreme-aspect and near-constant images, and class imbalance."""
from __future__ import annotations

import numpy as np

from .embeddings import Embeddings
from .findings import Finding

TINY_SIDE = 32  # px: a shorter side than CIFAR's is flagged
MAX_ASPECT = 4.0  # long side over short side
CONSTANT_STD = 3.0  # grey-level standard deviation (0-255) below which an image is near-constant
IMBALANCE = 4.0  # a class with fewer than the median class's images over this is flagged
OUTLIER_Z = 3.5  # modified z-score (Iglewicz and Hoaglin, 1993) above which an image is an outlier


def outliers(data: Embeddings) -> list[Finding]:
    """Images far from every class: 1 - the best cosine similarity to a class's mean training
    embedding, flagged where its modified z-score (median and MAD over all images) passes
    :data:`OUTLIER_Z`."""
    unit = [f / np.linalg.norm(f, axis=1, keepdims=True).clip(1e-12) for f in (data.train, data.val)]
    labels = data.labels("train")
    centroids = np.stack([unit[0][labels == c].mean(0) if (labels == c).any() else np.zeros(unit[0].shape[1])
                          for c in range(len(data.splits.classes))])
    centroids /= np.linalg.norm(centroids, axis=1, keepdims=True).clip(1e-12)
    distance = [1.0 - (u @ centroids.T).max(axis=1) for u in unit]
    every = np.concatenate(distance)
    median = np.median(every)
    mad = np.median(np.abs(every - median)) * 1.4826
    if mad <= 1e-9:
        return []
    found = []
    for split, values in zip(("train", "val"), distance):
        for i in np.flatnonzero((values - median) / mad > OUTLIER_Z):
            z = (values[i] - median) / mad
            found.append(Finding("outlier", data.images(split).key(int(i)), score=round(float(z), 4),
                                 label=data.splits.classes[data.labels(split)[i]], split=split,
                                 detail=f"cosine distance {values[i]:.3f} to the nearest class mean (median {median:.3f})"))
    return found


def image_checks(data: Embeddings) -> list[Finding]:
    """Tiny, extreme-aspect and near-constant images (on the decoded pixels: the decode cache only
    downscales to the model's short side, so a side below :data:`TINY_SIDE` was that small), and
    the files that did not decode."""
    found = [Finding("unreadable", p.path, score=1.0, detail=p.reason) for p in data.splits.problems]
    for split in ("train", "val"):
        images = data.images(split)
        for i in range(len(images)):
            found += _check_image(np.asarray(images.load(i)), images.key(i),
                                  data.splits.classes[data.labels(split)[i]], split)
    return found


def _check_image(pixels: np.ndarray, path: str, label: str, split: str) -> list[Finding]:
    h, w = pixels.shape[:2]
    found = []
    if min(h, w) < TINY_SIDE:
        found.append(Finding("tiny", path, score=round(TINY_SIDE / max(min(h, w), 1), 4), label=label, split=split,
                             detail=f"{w} x {h} px"))
    if max(h, w) / max(min(h, w), 1) > MAX_ASPECT:
        found.append(Finding("aspect", path, score=round(max(h, w) / max(min(h, w), 1), 4), label=label, split=split,
                             detail=f"{w} x {h} px"))
    std = float(pixels[::4, ::4].mean(axis=2).std())
    if std < CONSTANT_STD:
        found.append(Finding("constant", path, score=round(1.0 - std / CONSTANT_STD, 4), label=label, split=split,
                             detail=f"grey-level standard deviation {std:.2f}"))
    return found


def imbalance(data: Embeddings) -> list[Finding]:
    """Classes with fewer training images than the median class's over :data:`IMBALANCE`, and
    classes of a single image (whose label no other image can confirm)."""
    counts = np.bincount(data.labels("train"), minlength=len(data.splits.classes))
    median = float(np.median(counts))
    found = []
    for c, count in enumerate(counts):
        if count * IMBALANCE < median or count <= 1:
            found.append(Finding("imbalance", "", score=round(median / max(int(count), 1), 4), label=data.splits.classes[c],
                                 split="train", detail=f"{count} training image(s), the median class has {median:g}"))
    return found
