"""``table:PATH``: images listed in a CSV, TSV or parquet table, with their labels and, optionally, their split.

Default columns: ``image`` (a path relative to the table's folder, or to ``--data-dir`` when
given), ``label`` (one label, or several separated by a space) and an optional ``split``
(``train``, ``val`` or ``test``). Options follow the path, comma-separated:
``table:labels.csv,image=file,label=tags,sep=semicolon`` (see :func:`parse_options`;
docs/datasets.md).

Every row has exactly one label: single-label data (one class index per image). Any row with
several, or a one-0/1-column-per-class table (``classes=columns``): multi-label data (a multi-hot
row per image). Without a split column, validation is a seeded split of the rows: stratified per
class (:func:`tlf.data.folder.stratified_split`, as the folder plugin splits) for single-label
data, iteratively stratified (Sechidis et al. 2011, the ``iterative-stratification`` package)
for multi-label data. Images are ordered by class, then path, as the folder plugin orders them,
so a table and the equivalent class folders give the same split and the same run.

A missing column, a bad split value, an empty label, a repeated image, a path leading out of the
data folder and a class only in validation or test are one-line errors naming the row;
unreadable images and links leading out of the data folder are reported problems (errors with
``--strict``), as for folders.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tlf.data.dataset import DatasetRequest, FileImageSet, Problem, Splits
from tlf.data.folder import check_files, check_record, raise_if_strict, stratified_split
from tlf.data.walk import inside
from tlf.errors import TlfError

from .table_file import FORMATS, read_table, table_format

SEPARATORS = {"space": " ", "comma": ",", "semicolon": ";", "pipe": "|", "tab": "\t"}
SPLIT_NAMES = {"train": "train", "val": "val", "valid": "val", "validation": "val", "test": "test"}
SPLIT_WORDS = {"train": "training", "val": "validation", "test": "test"}
LAYOUTS = ("column", "columns")  # labels in one column, or one 0/1 column per class
TRUE, FALSE = frozenset({"1", "1.0", "true", "yes"}), frozenset({"0", "0.0", "false", "no", ""})


@dataclass(frozen=True)
class TableOptions:
    """The parsed argument of ``table:PATH,key=value,...``."""

    path: Path
    image: str = "image"  # the column of image paths
    label: str = "label"  # the column of labels (classes=column)
    split: str | None = None  # the split column; None: "split" when the table has one
    sep: str = " "  # between the labels of one row
    classes: str = "column"  # "columns": every other column is a class holding 0 or 1
    format: str | None = None  # csv, tsv, parquet; None: from the suffix


OPTION_KEYS = ("image", "label", "split", "sep", "classes", "format")


def parse_options(text: str) -> TableOptions:
    """``"labels.csv,image=file,sep=pipe"`` -> TableOptions: trailing ``key=value`` items are
    options, what precedes them the path (which may hold commas)."""
    items, options = text.split(","), {}
    while len(items) > 1 and "=" in items[-1]:
        key, _, value = (part.strip() for part in items.pop().partition("="))
        if key not in OPTION_KEYS:
            raise ValueError(f"unknown option {key!r}; options: {', '.join(OPTION_KEYS)}")
        if key in options:
            raise ValueError(f"option {key!r} given twice")
        options[key] = value
    path = ",".join(items).strip()
    if not path:
        raise ValueError("no table path")
    if "sep" in options:
        sep = options["sep"]
        options["sep"] = SEPARATORS.get(sep, sep)
        if len(options["sep"]) != 1:
            raise ValueError(f"sep {sep!r} is neither one character nor one of {', '.join(SEPARATORS)}")
    if options.get("classes", "column") not in LAYOUTS:
        raise ValueError(f"classes={options['classes']!r}: one of {', '.join(LAYOUTS)}")
    if options.get("format", "csv") not in FORMATS:
        raise ValueError(f"format={options['format']!r}: one of {', '.join(FORMATS)}")
    for key in ("image", "label", "split"):
        if key in options and not options[key]:
            raise ValueError(f"{key}= needs a column name")
    return TableOptions(path=Path(path), **options)


@dataclass
class _Rows:
    """The table's rows that name an image, in file order."""

    where: list[str]  # "line 7"
    paths: list[Path]
    labels: list[list[str]]  # the class names of each row
    splits: list[str] | None  # "train", "val", "test"; None without a split column


def table(options: TableOptions, request: DatasetRequest) -> Splits:
    """The plugin's factory: the table's images as :class:`Splits` (see the module docstring)."""
    path = Path(os.path.abspath(Path(options.path).expanduser()))
    if not path.is_file():
        raise TlfError(f"table {path} does not exist" if not path.exists() else f"table {path} is not a file",
                       hint="pass the CSV, TSV or parquet file that lists the images: table:path/to/labels.csv")
    root = Path(os.path.abspath(Path(request.data_dir).expanduser())) if request.data_dir else path.parent
    if not root.is_dir():
        raise TlfError(f"data folder {root} does not exist", hint="--data-dir names the folder the image paths start from")
    columns, records = read_table(path, table_format(path, options.format))
    rows = _read_rows(path, root, options, columns, records)
    classes = _classes(options, columns, rows)
    multi = options.classes == "columns" or any(len(names) > 1 for names in rows.labels)
    line, outside = dict(zip(map(str, rows.paths), rows.where)), _links_out(root, rows)
    skipped = {p.path for p in outside}
    inside_root = [p for p in rows.paths if str(p) not in skipped]
    problems = outside + [Problem(p.path, f"{line[p.path]}: {p.reason}")
                          for p in check_files(inside_root, check_record(request, path))]
    raise_if_strict(problems, request)
    rows = _without(rows, {p.path for p in problems})
    if len(rows.paths) < 2:
        raise TlfError(f"table {path} lists {len(rows.paths)} readable image(s) of {len(line)}; a classifier needs more",
                       hint="'tlf data show' lists the images skipped and why")
    labels = _encode(rows.labels, classes, multi)
    order = sorted(range(len(rows.paths)), key=lambda i: (str(rows.paths[i]) if multi else (labels[i], str(rows.paths[i]))))
    rows, labels = _without(rows, set(), order), labels[order]
    parts, how = _assign(rows, labels, request)
    sets = {name: FileImageSet([rows.paths[i] for i in idx], labels[idx]) for name, idx in parts.items()}
    _check_training_classes(path, classes, rows, labels, parts)
    return Splits(name=f"table:{options.path}", classes=classes, train=sets["train"], val=sets["val"], root=root,
                  problems=problems, split=how, test=sets.get("test"))


def _read_rows(path: Path, root: Path, options: TableOptions, columns: list[str], records: list) -> _Rows:
    """Every row checked: its field count, image path (inside ``root``, listed once), labels and split."""
    split_column = options.split or ("split" if "split" in columns else None)
    needed = [options.image] + ([options.label] if options.classes == "column" else []) + ([split_column] if split_column else [])
    missing = [c for c in needed if c not in columns]
    if missing:
        raise TlfError(f"table {path} has no column {', '.join(map(repr, missing))} (its columns: {', '.join(columns)})",
                       hint=f"name the columns to read, e.g. table:{options.path},image=file,label=tags")
    at = {c: i for i, c in enumerate(columns)}
    class_columns = [c for c in columns if c not in (options.image, split_column)]
    rows, seen = _Rows([], [], [], [] if split_column else None), {}
    for where, record in records:
        if len(record) != len(columns):
            raise TlfError(f"table {path} {where} has {len(record)} field(s), its header {len(columns)}",
                           hint="give every row one value per column (quote values that hold the delimiter)")
        image = record[at[options.image]].strip()
        full = _image_path(path, root, where, image)
        if full in seen:
            raise TlfError(f"table {path}: {seen[full]} and {where} both list image {image!r}",
                           hint="keep one row per image; several labels go in one row, separated by the label separator")
        seen[full] = where
        if options.classes == "columns":
            names = [c for c in class_columns if _flag(path, where, c, record[at[c]])]
        else:
            names = _labels(path, where, image, record[at[options.label]], options.sep)
        rows.where.append(where)
        rows.paths.append(full)
        rows.labels.append(names)
        if split_column:
            rows.splits.append(_split_value(path, where, split_column, record[at[split_column]]))
    if not rows.paths:
        raise TlfError(f"table {path} lists no images", hint="add one row per image below the header")
    return rows


def _image_path(path: Path, root: Path, where: str, image: str) -> Path:
    """The image's path under ``root`` (not resolved: links are checked with the files); a path
    leading out of ``root`` (``..``, an absolute path elsewhere) is an error."""
    if not image:
        raise TlfError(f"table {path} {where}: the image path is empty", hint="give every row an image, or remove the row")
    full = os.path.normpath(os.path.join(root, image))
    if not inside(full, str(root)):
        raise TlfError(f"table {path} {where}: image {image!r} is outside the data folder {root}",
                       hint="image paths start from the table's folder, or from --data-dir when given; "
                            "pass --data-dir with a folder that holds every image")
    return Path(full)


def _labels(path: Path, where: str, image: str, text: str, sep: str) -> list[str]:
    names = list(dict.fromkeys(t.strip() for t in (text.split() if sep == " " else text.split(sep)) if t.strip()))
    if not names:
        raise TlfError(f"table {path} {where}: image {image!r} has an empty label",
                       hint="give every image at least one label, or remove the row")
    return names


def _flag(path: Path, where: str, column: str, text: str) -> bool:
    value = text.strip().lower()
    if value not in TRUE | FALSE:
        raise TlfError(f"table {path} {where}: column {column!r} holds {text!r}, not 0 or 1",
                       hint="with classes=columns every column besides the image and split ones is a class holding 0 or 1")
    return value in TRUE


def _split_value(path: Path, where: str, column: str, text: str) -> str:
    split = SPLIT_NAMES.get(text.strip().lower())
    if split is None:
        raise TlfError(f"table {path} {where}: split {text!r} (column {column!r}) is not train, val or test",
                       hint="write train, val or test in the split column")
    return split


def _classes(options: TableOptions, columns: list[str], rows: _Rows) -> list[str]:
    """The class names: the class columns in table order, or every label named, sorted."""
    if options.classes == "columns":
        split_column = options.split or ("split" if "split" in columns else None)
        classes = [c for c in columns if c not in (options.image, split_column)]
    else:
        classes = sorted({name for names in rows.labels for name in names})
    if len(classes) < 2:
        raise TlfError(f"table {options.path} names {len(classes)} class(es) ({', '.join(classes) or 'none'}); "
                       "a classifier needs two or more", hint="label the images with two classes or more")
    return classes


def _links_out(root: Path, rows: _Rows) -> list[Problem]:
    """One problem per image that is a link leading out of ``root`` (not followed, as folder walks do)."""
    boundary = os.path.realpath(root)
    problems, folders = [], {}  # each folder resolved once: a path component per lstat is slow on 100k rows
    for where, full in zip(rows.where, rows.paths):
        folder = folders.get(full.parent) or folders.setdefault(full.parent, os.path.realpath(full.parent))
        real = os.path.realpath(full) if os.path.islink(full) else os.path.join(folder, full.name)
        if not inside(real, boundary):
            problems.append(Problem(str(full), f"{where}: link to {real}, outside {boundary}; not followed"))
    return problems


def _without(rows: _Rows, bad: set[str], order: list[int] | None = None) -> _Rows:
    """``rows`` without the images in ``bad``, in ``order`` (default: as they are)."""
    keep = [i for i in (range(len(rows.paths)) if order is None else order) if str(rows.paths[i]) not in bad]
    return _Rows([rows.where[i] for i in keep], [rows.paths[i] for i in keep], [rows.labels[i] for i in keep],
                 None if rows.splits is None else [rows.splits[i] for i in keep])


def _encode(names: list[list[str]], classes: list[str], multi: bool) -> np.ndarray:
    """Class indices (N,), or multi-hot rows (N, C) when ``multi``."""
    index = {c: i for i, c in enumerate(classes)}
    if not multi:
        return np.asarray([index[n[0]] for n in names], dtype=np.int64)
    hot = np.zeros((len(names), len(classes)), dtype=np.int64)
    for row, labels in enumerate(names):
        hot[row, [index[n] for n in labels]] = 1
    return hot


def _assign(rows: _Rows, labels: np.ndarray, request: DatasetRequest) -> tuple[dict[str, np.ndarray], str]:
    """Row indices of each split, and how they were made, in words."""
    if rows.splits is None:
        train, val = seeded_split(labels, request.val_split, request.seed)
        return {"train": train, "val": val}, _seeded_words(labels, request)
    named = np.asarray(rows.splits)
    parts = {name: np.flatnonzero(named == name) for name in ("train", "val", "test")}
    how = "split column"
    if not len(parts["val"]) and len(parts["train"]):  # train/test only: validation drawn from the train rows
        train, val = seeded_split(labels[parts["train"]], request.val_split, request.seed)
        parts["train"], parts["val"] = parts["train"][train], parts["train"][val]
        how = f"split column; validation drawn from its train rows ({_seeded_words(labels, request)})"
    if not len(parts["test"]):
        del parts["test"]
    return parts, how


def seeded_split(labels: np.ndarray, val_split: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices (train, val): stratified per class for class indices; for multi-hot rows,
    iteratively stratified (``MultilabelStratifiedShuffleSplit``), so each label's images are
    shared between the splits as closely to ``val_split`` as the label sets allow."""
    if labels.ndim == 1:
        return stratified_split(labels, val_split, seed)
    if not 0.0 < val_split < 1.0:
        raise TlfError(f"val_split must be between 0 and 1, got {val_split}", hint="e.g. --val-split 0.2")
    from iterstrat.ml_stratifiers import MultilabelStratifiedShuffleSplit

    splitter = MultilabelStratifiedShuffleSplit(n_splits=1, test_size=val_split,
                                                random_state=seed % 2**32)  # numpy's legacy seeds are 32-bit
    try:
        train, val = next(splitter.split(np.zeros(len(labels)), labels))
    except ValueError as exc:  # scikit-learn's size checks: too few images for this val_split
        raise TlfError(f"cannot split {len(labels)} images with val_split {val_split:g}: {exc}",
                       hint="add images, change --val-split, or give the table a split column") from None
    return np.sort(train), np.sort(val)


def _seeded_words(labels: np.ndarray, request: DatasetRequest) -> str:
    kind = "stratified" if labels.ndim == 1 else "iteratively stratified (multi-label)"
    return f"{kind}, val_split {request.val_split:g}, seed {request.seed}"


def _check_training_classes(path: Path, classes: list[str], rows: _Rows, labels: np.ndarray,
                            parts: dict[str, np.ndarray]) -> None:
    """Both splits hold images, and every class has training images: a class only in validation
    or test cannot be learnt (its first row is named)."""
    for name in ("train", "val"):
        if not len(parts[name]):
            raise TlfError(f"table {path} has no {SPLIT_WORDS[name]} images (after skipping unreadable ones)",
                           hint="mark some rows split=train and some split=val, or drop the split column for a seeded split")
    hot = labels if labels.ndim == 2 else np.eye(len(classes), dtype=np.int64)[labels]
    trained = hot[parts["train"]].sum(axis=0) > 0
    for c in np.flatnonzero(~trained):
        elsewhere = [(name, i) for name in ("val", "test") if name in parts for i in parts[name] if hot[i, c]]
        if elsewhere:
            name, i = elsewhere[0]
            raise TlfError(f"table {path}: class {classes[c]!r} appears only in {SPLIT_WORDS[name]} ({rows.where[i]}), "
                           "never in training", hint="add training images of it, or remove its rows")
        raise TlfError(f"table {path}: class {classes[c]!r} has no readable image in training",
                       hint="add training images of it, or remove its column")
