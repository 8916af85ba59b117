"""``tlf.audit``: embed a dataset once, run every check, write the audit folder.

The folder (``<out>/<dataset>-<backbone>-audit-<UTC timestamp>``, made as a run directory is)
holds ``config.yaml`` (the settings the images were embedded with), ``audit.json`` (the
summary, counts, notes and every finding), ``issues.csv`` (one row per finding, by kind then
decreasing score), ``label_scores.csv`` (every image by decreasing label-issue score, the
flagged ones marked) and ``audit.html``.
"""
from __future__ import annotations

import csv
import io
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .. import messages
from ..config import RunConfig
from .defaults import COSINE, FOLDS, PHASH
from .findings import COLUMNS, KINDS, Finding, ordered


@dataclass
class AuditResult:
    """What :func:`audit` returns."""

    directory: Path
    summary: dict  # audit.json without the findings
    findings: list[Finding]
    label_scores: list[dict]  # every checked image by decreasing label-issue score (label_scores.csv)


def _find_all(data, cosine: float, phash: int, folds: int,
              timings: dict) -> tuple[list[Finding], list[dict], list[str]]:
    """Every finding of the embedded ``data``, every image's label-issue score, and notes on what
    could not be checked."""
    from ..features.feature_store import pixel_hashes
    from .checks import image_checks, imbalance, outliers
    from .duplicates import find_duplicates
    from .labels import label_findings

    start = time.perf_counter()
    hashes = np.concatenate([pixel_hashes(data.train_images), pixel_hashes(data.val_images)])
    pairs, rejected = find_duplicates(data, hashes, cosine, phash)
    timings["duplicates"] = round(time.perf_counter() - start, 2)
    start = time.perf_counter()
    labels, scores, note = label_findings(data, folds)
    timings["labels"] = round(time.perf_counter() - start, 2)
    start = time.perf_counter()
    others = outliers(data) + image_checks(data) + imbalance(data)
    timings["checks"] = round(time.perf_counter() - start, 2)
    notes = [note] if note else []
    if rejected:
        notes.append(f"{rejected} pair(s) of similar embeddings whose pixels differ (perceptual hashes, keypoints) "
                     f"were not reported as copies")
    return ordered(pairs + labels + others), scores, notes


def _csv(rows: list[dict], columns) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def _summary(data, findings: list[Finding], notes: list[str], settings: dict, timings: dict) -> dict:
    counts = Counter(f.kind for f in findings)
    return {"dataset": data.plan.dataset, "backbone": data.plan.backbone, "image_size": data.plan.image_size,
            "classes": len(data.splits.classes), "class_names": list(data.splits.classes),
            "images": len(data.train) + len(data.val), "train": len(data.train), "val": len(data.val),
            "engine": data.engine, "counts": {k: counts[k] for k in KINDS}, "notes": notes, "settings": settings,
            "seconds": round(sum(timings.values()), 2), "timings": timings}


def _write(data, findings: list[Finding], scores: list[dict], summary: dict, out: str, name: str | None) -> Path:
    import yaml

    from ..rundir import RunDirWriter
    from .page import render
    writer = RunDirWriter.create(out, data.plan.dataset, data.plan.backbone, "audit", name,
                                 files={"config.yaml": yaml.safe_dump(data.plan.to_dict(), sort_keys=False)})
    try:
        writer.write_json("audit.json", {**summary, "directory": str(writer.path),
                                         "findings": [f.to_dict() for f in findings]})
        writer.write_text("issues.csv", _csv([f.to_dict() for f in findings], COLUMNS))
        if scores:
            writer.write_text("label_scores.csv", _csv(scores, list(scores[0])))
        writer.write_text("audit.html", render(findings, data, summary, summary["notes"], str(writer.path)))
    finally:
        writer.unlock()
    return writer.path


def audit(config: RunConfig | None = None, *, out: str = "runs", name: str | None = None, quiet: bool = False,
          cosine: float = COSINE, phash: int = PHASH, folds: int = FOLDS, **settings: Any) -> AuditResult:
    """Audit the dataset of ``config`` (run settings; keyword ``settings`` override them: ``dataset``,
    ``backbone``, ``data_dir``, ...) embedded by its backbone; returns the folder written.

    ``cosine`` and ``phash``: a near copy's least embedding similarity and most perceptual-hash
    bits apart; ``folds``: the cross-validation folds of the label check."""
    from ..errors import TlfError
    from ..setting_checks import check_out_dir, check_run_name
    from .embeddings import embed
    if not 0 < cosine <= 1 or not 0 <= phash <= 64 or folds < 2:
        raise TlfError(f"bad audit setting (cosine {cosine}, phash {phash}, folds {folds})",
                       hint="cosine in (0, 1], phash in 0..64 bits, folds 2 or more")
    config = (config or RunConfig()).merged(settings)
    check_out_dir(out)
    if name is not None:
        check_run_name(name)
    with messages.scope():
        data = embed(config, quiet)
        timings = {"embeddings": round(data.seconds, 2)}
        findings, scores, notes = _find_all(data, cosine, phash, folds, timings)
    summary = _summary(data, findings, notes, {"cosine": cosine, "phash": phash, "folds": folds}, timings)
    directory = _write(data, findings, scores, summary, out, name)
    return AuditResult(directory, {**summary, "directory": str(directory)}, findings, scores)
