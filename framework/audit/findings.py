"""What the audit reports: one :class:`Finding` per suspect image (or pair, or class)."""
from __future__ import annotations

from dataclasses import asdict, dataclass

# the kinds, in the order issues.csv and audit.html list them
KINDS = ("conflict", "leak", "duplicate", "label", "outlier", "unreadable", "tiny", "aspect", "constant", "imbalance")
DESCRIPTIONS = {
    "conflict": "the same image (or a near copy) under two different labels",
    "leak": "an image in the training split and a copy of it in the validation split",
    "duplicate": "two copies of one image within a split",
    "label": "an image whose label the other images contradict (out-of-sample prediction)",
    "outlier": "an image far from every class in embedding space",
    "unreadable": "a file that does not decode",
    "tiny": "an image smaller than the smallest side tlf expects",
    "aspect": "an image much wider than tall, or taller than wide",
    "constant": "an image of nearly one colour",
    "imbalance": "a class much smaller than the others",
}


@dataclass
class Finding:
    """One row of issues.csv. ``score``: higher is more certain or more severe (per kind)."""

    kind: str
    path: str  # the image (for ``imbalance``: empty)
    other_path: str = ""  # the other image of a duplicate, leak or conflict pair
    score: float = 0.0
    label: str = ""  # its class
    suggested: str = ""  # the label the audit suggests (``label``)
    other_label: str = ""
    split: str = ""  # train | val
    other_split: str = ""
    detail: str = ""  # the evidence, in words

    def to_dict(self) -> dict:
        return asdict(self)


COLUMNS = tuple(Finding.__dataclass_fields__)


def ordered(findings: list[Finding]) -> list[Finding]:
    """Findings by kind (:data:`KINDS` order), each kind by decreasing score."""
    return sorted(findings, key=lambda f: (KINDS.index(f.kind), -f.score, f.path, f.other_path))
