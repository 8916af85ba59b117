"""``tlf predict``: classify image files with an exported model (onnxruntime; no torch)."""
from __future__ import annotations

import glob
import json
import os
import sys
from pathlib import Path
from typing import Any, Iterator

import click
import numpy as np

from ..data.walk import walk_images
from ..errors import TlfError


def expand(paths: tuple[str, ...]) -> Iterator[tuple[str, str | None]]:
    """(path, problem) for each image named by files, folders (recursive) and globs, in order,
    each file once."""
    seen: set[str] = set()
    for text, problem in _candidates(paths):
        key = os.path.realpath(text) if problem is None else text  # realpath never raises on a link loop
        if key not in seen:
            seen.add(key)
            yield text, problem


def _candidates(paths: tuple[str, ...]) -> Iterator[tuple[str, str | None]]:
    """Every entry named like an image is a candidate, whatever it is: reading it reports a FIFO,
    a dangling link or a link loop by name instead of leaving it out silently."""
    for text in paths:
        path = Path(text)
        if path.is_dir():
            found, skipped = walk_images(path)  # the dataset scan's walk: links only inside the folder
            if not found and not skipped:
                yield text, "folder holds no images"
            yield from ((str(p), None) for p in found)
            yield from ((p.path, p.reason) for p in skipped)
        elif os.path.lexists(text):
            yield text, None
        elif glob.has_magic(text):
            try:
                found = sorted(p for p in glob.glob(text, recursive=True) if not os.path.isdir(p))
            except (RecursionError, OSError) as exc:  # glob's ** recurses: folders nested too deep
                yield text, f"cannot expand this pattern ({type(exc).__name__}); name the folder instead"
                continue
            if not found:
                yield text, "no file matches this pattern"
            yield from ((p, None) for p in found)
        else:
            yield text, "no such file or folder"


def model_file(model: str) -> str:
    """``model``, or the ``model.onnx`` of a run directory; a run not exported yet says how to export it."""
    folder = Path(model)
    if not folder.is_dir():
        return model
    if (folder / "model.onnx").is_file():
        return str(folder / "model.onnx")
    if (folder / "config.yaml").is_file():
        raise TlfError(f"run {model} has no model.onnx yet", hint=f"export it first: tlf export {model}")
    raise TlfError(f"{model} is a folder without model.onnx",
                   hint="pass a model written by 'tlf export RUN_DIR', or a run directory that has one")


@click.command()
@click.argument("model", type=click.Path())
@click.argument("paths", nargs=-1, required=True)
@click.option("-k", "--top-k", type=click.IntRange(min=1), default=5, show_default=True, help="Classes shown per image.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per image (errors included) instead of a table.")
@click.option("--batch-size", type=click.IntRange(min=1), default=32, show_default=True, help="Images per inference call.")
@click.option("--threads", type=click.IntRange(min=1), default=None, help="onnxruntime intra-op threads.")
@click.option("--decode-threads", type=click.IntRange(min=1), default=None,
              help="Threads decoding and resizing images while the model runs (default: one per CPU).")
@click.option("--threshold", type=click.FloatRange(0, 1), default=None,
              help="Multi-label models: one probability threshold for every class, instead of the thresholds "
                   "tuned on the validation split (the model's metadata).")
@click.option("--provider", "providers", multiple=True,
              help="onnxruntime execution provider (repeatable, in order of preference); default: TensorRT, CUDA, CPU.")
def predict(model: str, paths: tuple[str, ...], top_k: int, as_json: bool, batch_size: int,
            threads: int | None, decode_threads: int | None, threshold: float | None, providers: tuple[str, ...]) -> None:
    """Classify images with MODEL (a file written by 'tlf export', or a run directory holding one).

    A multi-label model gives each image the set of labels whose probability reaches its
    class's threshold (most likely first, with their probabilities), whatever --top-k.

    PATHS are image files, folders (searched recursively) or glob patterns. Files that
    cannot be read are reported one by one and the rest are still classified; the exit
    status is 1 when any file failed. Needs only onnxruntime, numpy, Pillow and OpenCV.
    """
    from ..runtime import OnnxClassifier

    model = model_file(model)
    classifier = OnnxClassifier(model, providers=providers or None, threads=threads)
    rows: list[dict] = []
    failures = 0
    if threshold is not None and not classifier.multi_label:
        raise TlfError(f"--threshold applies to multi-label models; {model} predicts one class per image",
                       hint="drop --threshold (use --top-k to see more classes)")
    for row in _classified(classifier, paths, top_k, batch_size, decode_threads, threshold):
        failures += "error" in row
        if as_json:
            click.echo(json.dumps(row))
        else:
            rows.append(row)
    if not as_json:
        _print_table(rows, model, classifier.multi_label)
    if failures:
        sys.exit(1)


def _classified(classifier: Any, paths: tuple[str, ...], top_k: int, batch_size: int,
                decode_threads: int | None, threshold: float | None = None) -> Iterator[dict]:
    """One row per file of ``paths``, in their order: its top-k classes, or why it could not be read.
    Files are decoded on ``decode_threads`` while the model runs on the previous batch."""
    from ..resources import usable_cpus
    from ..runtime import ordered_map

    def prepare(item: tuple[str, str | None]) -> tuple[str, np.ndarray | None, str | None]:
        path, problem = item
        if problem is None:
            try:
                return path, classifier.preprocess(path), None
            except TlfError as exc:  # UnreadableImage says why in .reason
                problem = getattr(exc, "reason", exc.message)
        return path, None, problem

    def flush(batch: list[tuple[str, np.ndarray]]) -> Iterator[dict]:
        if batch:
            for (path, _), pred in zip(batch, classifier.classify(np.stack([a for _, a in batch]), top_k, threshold)):
                yield {"path": path, **pred.to_dict()}
            batch.clear()

    batch: list[tuple[str, np.ndarray]] = []
    for path, array, problem in ordered_map(prepare, expand(paths), decode_threads or usable_cpus(), 2 * batch_size):
        if array is not None:
            batch.append((path, array))
        if problem is not None:
            yield from flush(batch)  # keep output in input order
            yield {"path": path, "error": problem}
        if len(batch) >= batch_size:
            yield from flush(batch)
    yield from flush(batch)


def _print_table(rows: list[dict], model: str, sets: bool = False) -> None:
    """The rows as a table: the top class, its probability and the next ones; for a multi-label
    model (``sets``) the most likely label of the set, its probability and the rest of the set."""
    from rich.table import Table
    from rich.text import Text

    from ..messages import plain_console
    table = Table(title=f"tlf predict: {model}")
    columns = ("label", "prob", "also above its threshold") if sets else ("label", "prob", "next")
    for column, justify in zip(("image", *columns), ("left", "left", "right", "left")):
        table.add_column(column, justify=justify, overflow="fold")
    errors = []
    for row in rows:
        if "error" in row:
            errors.append(row)
            table.add_row(row["path"], Text("unreadable", style="red"), "", row["error"])
            continue
        if not row["labels"]:  # a multi-label model found no label above its threshold
            table.add_row(row["path"], Text("(none)", style="dim"), "", "")
            continue
        rest = ", ".join(f"{lab} {p:.1%}" for lab, p in zip(row["labels"][1:], row["probabilities"][1:]))
        table.add_row(row["path"], row["labels"][0], f"{row['probabilities'][0]:.1%}", rest)
    plain_console().print(table)
    for row in errors:
        click.echo(f"error: {row['path']}: {row['error']}", err=True)
