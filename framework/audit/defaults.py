"""The audit's tunable defaults, in one place for the command's help and the checks (no torch
import: ``tlf --help`` reads them)."""
from __future__ import annotations

COSINE = 0.60  # near copies: candidates' least cosine similarity of the pooled features
PHASH = 6  # near copies: confirmed when the perceptual hashes are at most this many of 64 bits apart
FOLDS = 5  # cross-validation folds of the label check
