"""Exact and near duplicates, within a split and across training and validation (leaks).

Exact: equal decoded pixels (:func:`tlf.features.feature_store.pixel_hashes`). Near: each
image's nearest :data:`NEIGHBOURS` by cosine similarity of the embeddings, at ``cosine`` or
more, found with block-wise matrix products (memory: a block of rows times all images, never
all pairs), then confirmed by the pixels (:mod:`tlf.audit.confirm`): perceptual hashes at most
``phash`` bits apart, or, for a pair whose hashes are at most :data:`CANDIDATE_PHASH` bits
apart (a cropped copy), at least :data:`MATCHES` keypoint matches that one similarity
transform explains. The defaults were chosen on the flowers benchmark (docs/results.md).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import numpy as np
import torch

from .defaults import COSINE, PHASH
from .confirm import KeypointMatches, PerceptualHashes
from .embeddings import Embeddings
from .findings import Finding

NEIGHBOURS = 10  # nearest images considered per image: bounds the pairs by 10 N
BLOCK_BYTES = 256 << 20  # one block of similarities
CANDIDATE_PHASH = 24  # further apart (random photos: 32 +- 4): not a copy, no keypoint check
MATCHES = 20  # confirmed: keypoint matches one similarity transform explains


@dataclass(frozen=True)
class Image:
    """One audited image: its split and index there."""

    split: str
    index: int


def _rows(data: Embeddings) -> list[Image]:
    return [Image("train", i) for i in range(len(data.train))] + [Image("val", i) for i in range(len(data.val))]


def similar_pairs(features: np.ndarray, cosine: float, neighbours: int = NEIGHBOURS,
                  block_bytes: int = BLOCK_BYTES) -> Iterator[tuple[int, int, float]]:
    """``(i, j, similarity)`` with i < j for each row's nearest ``neighbours`` rows at cosine
    similarity ``cosine`` or more, one block of rows at a time."""
    x = torch.nn.functional.normalize(torch.from_numpy(np.ascontiguousarray(features, dtype=np.float32)), dim=1)
    n = len(x)
    block = max(1, block_bytes // (4 * max(n, 1)))
    k = min(neighbours + 1, n)
    seen: set[tuple[int, int]] = set()
    for start in range(0, n, block):
        sims = x[start:start + block] @ x.T
        values, columns = torch.topk(sims, k, dim=1)
        for r, (row_values, row_columns) in enumerate(zip(values.tolist(), columns.tolist())):
            i = start + r
            for s, j in zip(row_values, row_columns):
                pair = (min(i, j), max(i, j))
                if s >= cosine and j != i and pair not in seen:
                    seen.add(pair)
                    yield *pair, s


def _pair(data: Embeddings, a: Image, b: Image, score: float, detail: str) -> Finding:
    """The finding for copies ``a`` and ``b``: ``path`` is the one to leave out (the validation
    copy of a leak, the later copy of a duplicate)."""
    if a.split == "val" and b.split == "train":
        a, b = b, a
    label_a, label_b = (data.splits.classes[data.labels(x.split)[x.index]] for x in (a, b))
    kind = "conflict" if label_a != label_b else "leak" if a.split != b.split else "duplicate"
    return Finding(kind, data.images(b.split).key(b.index), data.images(a.split).key(a.index), round(score, 6),
                   label=label_b, other_label=label_a, split=b.split, other_split=a.split, detail=detail)


def exact_pairs(hashes: np.ndarray, rows: list[Image]) -> Iterator[tuple[Image, Image]]:
    """(first copy, another copy) for each group of rows with equal pixel hashes."""
    first: dict[bytes, Image] = {}
    for h, image in zip(map(bytes, hashes), rows):
        if h in first:
            yield first[h], image
        else:
            first[h] = image


def _confirm(perceptual: PerceptualHashes, keypoints: KeypointMatches, a: Image, b: Image, phash: int) -> str | None:
    """Why ``a`` and ``b`` are copies of one photo, or None when their pixels say they are not."""
    distance = perceptual.distance(a, b)
    if distance <= phash:
        return f"perceptual hashes {distance} bits apart"
    if distance > CANDIDATE_PHASH:
        return None
    matches = keypoints.inliers(a, b)
    return f"{matches} matching keypoints (perceptual hashes {distance} bits apart)" if matches >= MATCHES else None


def find_duplicates(data: Embeddings, hashes: np.ndarray, cosine: float = COSINE,
                    phash: int = PHASH) -> tuple[list[Finding], int]:
    """Exact and confirmed near duplicate pairs (``hashes``: the rows' pixel hashes, training
    rows first), and how many similar pairs the pixel checks turned down."""
    rows = _rows(data)
    found = [_pair(data, a, b, 1.0, "same decoded pixels") for a, b in exact_pairs(hashes, rows)]

    def load(image: Image) -> np.ndarray:
        return np.asarray(data.images(image.split).load(image.index))

    perceptual, keypoints = PerceptualHashes(load), KeypointMatches(load)
    rejected = 0
    for i, j, s in similar_pairs(np.concatenate([data.train, data.val]), cosine):
        if bytes(hashes[i]) == bytes(hashes[j]):
            continue  # an exact pair, reported above
        why = _confirm(perceptual, keypoints, rows[i], rows[j], phash)
        if why is None:
            rejected += 1
            continue
        found.append(_pair(data, rows[i], rows[j], s, f"cosine {s:.3f}, {why}"))
    return found, rejected
