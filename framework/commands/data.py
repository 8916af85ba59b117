"""``tlf data``: download datasets and show what is in them."""
from __future__ import annotations

import json
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable

import click
import numpy as np

from ..data.dataset import ArrayImageSet, DatasetRequest, FileImageSet, ImageSet, Problem, Splits

SIZE_SAMPLE = 1000  # images per split whose size is read for the statistics
COMMON_SETS = 5  # most common label sets shown per split (multi-label data)


def _stats(values: list[int]) -> dict[str, float]:
    return {"min": int(min(values)), "median": float(np.median(values)), "max": int(max(values))}


def _sizes(images: ImageSet, sample: int = SIZE_SAMPLE) -> dict[str, Any]:
    """Width/height statistics over up to ``sample`` evenly spaced images (file headers only)."""
    from ..data.reading import image_size

    n = len(images)
    if n == 0:
        return {"sampled": 0}
    if isinstance(images, ArrayImageSet):
        h, w = images.images.shape[1:3]
        return {"sampled": n, "width": _stats([w]), "height": _stats([h])}
    picks = np.unique(np.linspace(0, n - 1, min(n, sample)).round().astype(int))
    if isinstance(images, FileImageSet):
        sizes = [s for s in (image_size(images.paths[i]) for i in picks) if s is not None]
    else:
        sizes = [(a.shape[1], a.shape[0]) for a in (images.load(int(i)) for i in picks)]
    if not sizes:
        return {"sampled": 0}
    return {"sampled": len(sizes), "width": _stats([w for w, _ in sizes]), "height": _stats([h for _, h in sizes])}


def full_check(images: ImageSet) -> list[Problem]:
    """Decode every image of a file-backed set completely (``read_rgb``); one problem per failure."""
    from ..data.reading import UnreadableImage, read_rgb

    if not isinstance(images, FileImageSet):
        return []

    def attempt(path: Path) -> Problem | None:
        try:
            read_rgb(path)
        except UnreadableImage as exc:
            return Problem(exc.path, exc.reason)
        return None

    with ThreadPoolExecutor(4) as pool:
        return [p for p in pool.map(attempt, images.paths) if p is not None]


def describe(splits: Splits, check: bool = False) -> dict[str, Any]:
    """What ``tlf data show`` reports, as plain JSON-able data: per split, its image count, images
    per class and image sizes; for multi-label data also the label cardinality (mean labels per
    image) and the most common label sets."""
    problems = list(splits.problems)
    sets = _named_sets(splits)
    if check:
        seen = {p.path for p in problems}
        problems += [p for s in sets.values() for p in full_check(s) if p.path not in seen]
    parts = {part: {"count": len(images), "per_class": dict(zip(splits.classes, map(int, _class_counts(images, splits)))),
                    "image_size": _sizes(images), **(_label_sets(images, splits.classes) if splits.multi_label else {})}
             for part, images in sets.items()}
    return {
        "name": splits.name,
        "root": str(splits.root) if splits.root else None,
        "split": splits.split,
        "num_classes": splits.num_classes,
        "multi_label": splits.multi_label,
        "classes": list(splits.classes),
        "splits": parts,
        "problems": [{"path": p.path, "reason": p.reason} for p in problems],
    }


def _named_sets(splits: Splits) -> dict[str, ImageSet]:
    """train, val and, when the data has one, test."""
    return {"train": splits.train, "val": splits.val, **({"test": splits.test} if splits.test is not None else {})}


def _class_counts(images: ImageSet, splits: Splits) -> np.ndarray:
    """Images per class (for multi-label data: images showing each class)."""
    if not len(images):
        return np.zeros(splits.num_classes, int)
    if images.labels.ndim == 2:
        return images.labels.sum(axis=0)
    return np.bincount(images.labels, minlength=splits.num_classes)


def _label_sets(images: ImageSet, classes: list[str]) -> dict[str, Any]:
    """Label cardinality and the :data:`COMMON_SETS` most common label sets of multi-hot ``images.labels``."""
    if not len(images):
        return {"label_cardinality": None, "common_label_sets": []}
    counts = Counter(tuple(np.flatnonzero(row)) for row in images.labels)
    common = [{"labels": [classes[c] for c in key], "count": n} for key, n in counts.most_common(COMMON_SETS)]
    return {"label_cardinality": round(float(images.labels.sum(axis=1).mean()), 3), "common_label_sets": common}


def dataset_options(command: Callable) -> Callable:
    """The options every ``tlf data`` command takes."""
    for option in reversed([
        click.argument("dataset"),
        click.option("--data-dir", type=click.Path(path_type=Path),
                     help="Use an existing copy (the extracted folder, or the folder holding it) instead of the cache."),
        click.option("--val-split", type=float, default=0.2, show_default=True,
                     help="Fraction held out for validation when the data has no validation split."),
        click.option("--seed", type=int, default=0, show_default=True, help="Seed of that split."),
        click.option("--strict", is_flag=True, help="Unreadable images are an error instead of being skipped."),
    ]):
        command = option(command)
    return command


def _load(dataset: str, data_dir: Path | None, val_split: float, seed: int, strict: bool) -> Splits:
    from ..data import load_dataset
    from ..setting_checks import RANGES, check_value
    val_split = check_value("val_split", val_split, float, RANGES["val_split"])
    seed = check_value("seed", seed, int, RANGES["seed"])
    return load_dataset(dataset, DatasetRequest(data_dir=data_dir, val_split=val_split, seed=seed, strict=strict))


@click.group()
def data() -> None:
    """Download datasets and show their splits, classes and problems."""


@data.command()
@dataset_options
def download(dataset: str, data_dir: Path | None, val_split: float, seed: int, strict: bool) -> None:
    """Download, verify and extract DATASET into the cache ($TLF_HOME/datasets), unless already there."""
    splits = _load(dataset, data_dir, val_split, seed, strict)
    where = f" in {splits.root}" if splits.root else ""
    skipped = f", {len(splits.problems)} unreadable files skipped" if splits.problems else ""
    test = f" (and {len(splits.test)} test)" if splits.test is not None else ""
    click.echo(f"{splits.name}: {splits.num_classes} classes, {len(splits.train)} train and "
               f"{len(splits.val)} val images{test}{where}{skipped}")


@data.command()
@dataset_options
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option("--check", is_flag=True, help="Decode every image fully (slower) to find all unreadable files.")
def show(dataset: str, data_dir: Path | None, val_split: float, seed: int, strict: bool, as_json: bool,
         check: bool) -> None:
    """Splits, class names, counts per class and split, image sizes and problems of DATASET."""
    info = describe(_load(dataset, data_dir, val_split, seed, strict), check=check)
    if as_json:
        click.echo(json.dumps(info, indent=2))
        return
    _print(info)


def _print(info: dict[str, Any]) -> None:
    from rich.table import Table
    from rich.text import Text

    from ..messages import plain_console
    console = plain_console()
    parts = info["splits"]
    counts = ", ".join(f"{p['count']} {name}" for name, p in parts.items())
    console.print(Text.assemble((info["name"], "bold"), f": {info['num_classes']} classes"
                                f"{' (multi-label)' if info.get('multi_label') else ''}, {counts}"
                                + (f" ({info['root']})" if info["root"] else "")))
    if info["split"]:
        console.print(f"split: {info['split']}")
    table = Table(show_lines=False)
    table.add_column("class", justify="left")
    for name in parts:
        table.add_column(name, justify="right")
    for name in info["classes"]:
        table.add_row(name, *(str(p["per_class"][name]) for p in parts.values()))
    table.add_row(Text("total", style="bold"), *(str(p["count"]) for p in parts.values()))
    console.print(table)
    for part, p in parts.items():
        if p.get("label_cardinality") is not None:
            common = "; ".join(f"{' + '.join(s['labels']) or '(none)'}: {s['count']}" for s in p["common_label_sets"])
            console.print(f"{part}: {p['label_cardinality']:g} labels per image; most common label sets: {common}")
    for part, p in parts.items():
        sizes = p["image_size"]
        if sizes.get("sampled"):
            w, h = sizes["width"], sizes["height"]
            console.print(f"{part} image size (min/median/max over {sizes['sampled']}): "
                          f"width {w['min']}/{w['median']:g}/{w['max']}, height {h['min']}/{h['median']:g}/{h['max']}")
    _print_problems(console, info["problems"])


def _print_problems(console: Any, problems: list[dict[str, str]]) -> None:
    if problems:
        console.print(f"{len(problems)} problem(s): unreadable files, links not followed, folders skipped:", style="yellow")
        for p in problems[:20]:
            console.print(f"  {p['path']}: {p['reason']}")
        if len(problems) > 20:
            console.print(f"  ... and {len(problems) - 20} more (--json lists them all)")
    else:
        console.print("no problems found")
