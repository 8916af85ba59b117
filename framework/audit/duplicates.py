"""Exact and near duplicates, within a split and across training and validation (leaks).

Exact: equal decoded pixels (:func:`tlf.engine.feature_store.pixel_hashes`). Near: pairs whose
embeddings' cosine similarity is at least ``cosine`` among each image's nearest
:data:`NEIGHBOURS`, found with block-wise matrix products (memory: a block of rows times all
images, never all pairs), then confirmed by the images' perceptual hashes (imagehash's pHash:
a resized, re-encoded, slightly cropped or recoloured copy keeps most of its 64 bits).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import numpy as np
import torch

from .embeddings import Embeddings
from .findings import Finding

NEIGHBOURS = 10  # nearest images considered per image: bounds the pairs by 10 N
BLOCK_BYTES = 256 << 20  # one block of similarities
DEFAULT_COSINE = 0.90  # candidates: cosine similarity of the pooled features at least this
DEFAULT_PHASH = 14  # confirmed: perceptual hashes at most this many of 64 bits apart


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


class _Hashes:
    """Perceptual hashes, computed on first use."""

    def __init__(self, data: Embeddings) -> None:
        self.data = data
        self.known: dict[Image, object] = {}

    def distance(self, a: Image, b: Image) -> int:
        return int(self[a] - self[b])

    def __getitem__(self, image: Image):
        if image not in self.known:
            import imagehash
            from PIL import Image as PILImage
            pixels = np.asarray(self.data.images(image.split).load(image.index))
            self.known[image] = imagehash.phash(PILImage.fromarray(pixels))
        return self.known[image]


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


def find_duplicates(data: Embeddings, hashes: np.ndarray, cosine: float = DEFAULT_COSINE,
                    phash: int = DEFAULT_PHASH) -> tuple[list[Finding], int]:
    """Exact and confirmed near duplicate pairs (``hashes``: the rows' pixel hashes, training
    rows first), and how many near candidates the perceptual hash turned down."""
    rows = _rows(data)
    found = [_pair(data, a, b, 1.0, "same decoded pixels") for a, b in exact_pairs(hashes, rows)]
    perceptual = _Hashes(data)
    rejected = 0
    for i, j, s in similar_pairs(np.concatenate([data.train, data.val]), cosine):
        if bytes(hashes[i]) == bytes(hashes[j]):
            continue  # an exact pair, reported above
        distance = perceptual.distance(rows[i], rows[j])
        if distance > phash:
            rejected += 1
            continue
        found.append(_pair(data, rows[i], rows[j], s, f"cosine {s:.3f}, perceptual hashes {distance} bits apart"))
    return found, rejected
