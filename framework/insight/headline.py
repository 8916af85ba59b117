"""A run's headline: the few lines that matter (accuracy, time, where things are, what to do next).

One place for them: ``tlf train``, ``tlf evaluate`` and ``tlf export`` end with these lines, and
report.html opens with them.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..messages import duration

METRIC_WORDS = {"acc": "accuracy", "map": "mAP"}  # a task metric's key -> the word the headline says


def _read(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def headline(run_dir: str | Path) -> list[tuple[str, str]]:
    """``(label, text)`` rows for a run directory, from its summary.json, evaluation.json and files."""
    run_dir = Path(run_dir)
    summary, evaluation = _read(run_dir / "summary.json"), _read(run_dir / "evaluation.json")
    rows = []
    key, label = ("map", METRIC_WORDS["map"]) if summary.get("best_metric") == "val_map" else ("accuracy", "accuracy")
    accuracy = evaluation.get(key, summary.get("best_val_accuracy"))  # summary's: the task's criterion
    if accuracy is not None:
        where = f" on {evaluation['images']} validation images" if "images" in evaluation else " on the validation set"
        best = f", best of {summary['epochs']} epochs: epoch {summary['best_epoch']}" if summary.get("epochs") else ""
        picked = " (picked the checkpoint)" if summary.get("test") else ""
        rows.append((label, f"{accuracy:.1%}{where}{best}{picked}"))
    if summary.get("test"):
        rows.append(("test", test_line(summary)))
    if summary.get("epochs"):
        rate = summary.get("images_per_second")
        speed = f"; training steps ran at {rate:.0f} images/s (median epoch)" if rate else ""
        rows.append(("time", f"{duration(summary['seconds'])} for {summary['epochs']} epochs, set-up and frozen pass "
                             f"included{speed}"))
    if (run_dir / "report.html").is_file():
        rows.append(("report", str(run_dir / "report.html")))
    model = run_dir / "model.onnx"
    rows.append(("model", str(model) if model.is_file() else "not exported yet"))
    rows.append(("next", next_step(run_dir)))
    return rows


def test_line(summary: dict[str, Any]) -> str:
    """The test split's figure of a run, said as what it is: the checkpoint picked on validation,
    scored once on images that never chose anything."""
    test, metric = summary["test"], summary.get("best_metric", "val_acc").removeprefix("val_")
    value = test.get(metric)
    figure = f"{value:.1%} {METRIC_WORDS.get(metric, metric)}" if isinstance(value, (int, float)) else "no figure"
    return f"{figure} on {test.get('images', '?')} held-out test images (the validation-picked checkpoint, scored once)"


def next_step(run_dir: Path) -> str:
    """The command a user runs next on this run."""
    if (run_dir / "model.onnx").is_file():
        return f"tlf predict {run_dir} IMAGES...  (classify your images with the exported model)"
    return f"tlf export {run_dir}  (an ONNX model; then: tlf predict {run_dir} IMAGES...)"


def headline_lines(run_dir: str | Path) -> list[str]:
    """The headline as the commands print it, one ``label: text`` line per row."""
    return [f"{label}: {text}" for label, text in headline(run_dir)]
