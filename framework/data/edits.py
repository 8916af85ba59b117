"""``--exclude FILE`` and ``--relabel FILE``: a cleaned view of a dataset's splits, the user's
files untouched.

An exclude file lists images, one per line, or is a CSV with a ``path`` column (the audit's
``issues.csv``, filtered); a relabel file is a CSV of ``path,new_label`` (a header line naming a
``path`` column, and ``new_label``, ``suggested`` or ``label``, is optional). Blank lines and lines starting with ``#`` are skipped. A path is
the image's file (absolute, or relative to the dataset's folder or the current one) or the
key tlf shows for an in-memory image (``cifar10[12]``). A line naming no image of the dataset,
or a class the dataset does not have, is an error naming the file and the line.
"""
from __future__ import annotations

import csv
import dataclasses
import os
from pathlib import Path

import numpy as np

from ..errors import TlfError
from .dataset import ArrayImageSet, FileImageSet, ImageSet, Splits
from .download import file_hash


def _rows(file: str) -> list[tuple[int, list[str]]]:
    """``(line number, fields)`` of the CSV ``file``, header, blank and comment lines dropped."""
    path = Path(file)
    if not path.is_file():
        raise TlfError(f"{file} does not exist", hint="pass the path of a text or CSV file")
    with open(path, newline="", encoding="utf-8") as f:
        rows = [(n, [c.strip() for c in row]) for n, row in enumerate(csv.reader(f), start=1)]
    rows = [(n, row) for n, row in rows if row and row[0] and not row[0].startswith("#")]
    if rows and "path" in [c.lower() for c in rows[0][1]]:
        header, rows = [c.lower() for c in rows[0][1]], rows[1:]
        column = header.index("path")
        label = next((header.index(c) for c in ("new_label", "suggested", "label") if c in header), None)
        return [(n, [row[column], *([row[label]] if label is not None and label < len(row) else [])])
                for n, row in rows if column < len(row) and row[column]]  # an audit's imbalance rows name no file
    return rows


class _Index:
    """Where each image of the splits is, by its key (files: their real path)."""

    def __init__(self, splits: Splits) -> None:
        self.splits = splits
        self.where: dict[str, tuple[str, int]] = {}
        for name in ("train", "val"):
            images = getattr(splits, name)
            for i in range(len(images)):
                self.where[self._normal(images.key(i))] = (name, i)

    @staticmethod
    def _normal(key: str) -> str:
        return os.path.realpath(key) if os.path.sep in key or os.path.exists(key) else key

    def find(self, text: str, file: str, line: int) -> tuple[str, int]:
        candidates = [text]
        if self.splits.root is not None and not os.path.isabs(text):
            candidates.insert(0, str(Path(self.splits.root) / text))
        for candidate in candidates:
            found = self.where.get(self._normal(candidate))
            if found is not None:
                return found
        raise TlfError(f"{file}, line {line}: {text!r} is not an image of dataset {self.splits.name}",
                       hint="list the images by their paths as the audit's issues.csv writes them")


def _subset(images: ImageSet, keep: np.ndarray, labels: np.ndarray) -> ImageSet:
    if isinstance(images, FileImageSet):
        return FileImageSet([images.paths[i] for i in keep], labels[keep])
    if isinstance(images, ArrayImageSet):
        return ArrayImageSet(images.images[keep], labels[keep], images.name)
    raise TlfError(f"--exclude/--relabel cannot edit a {type(images).__name__}",
                   hint="use them with a dataset of files or in-memory arrays")


def apply_edits(splits: Splits, exclude: str | None, relabel: str | None) -> Splits:
    """``splits`` without the images listed in ``exclude`` and with the labels of ``relabel``;
    ``splits.edits`` says what changed (recorded in the run's summary)."""
    if not exclude and not relabel:
        return splits
    index = _Index(splits)
    dropped = {"train": set(), "val": set()}
    labels = {"train": splits.train.labels.copy(), "val": splits.val.labels.copy()}
    edits: dict = {}
    if exclude:
        for line, row in _rows(exclude):
            name, i = index.find(row[0], exclude, line)
            dropped[name].add(i)
        edits.update(exclude=exclude, exclude_sha256=file_hash(Path(exclude))[:16],
                     excluded=sum(map(len, dropped.values())))
    if relabel and splits.multi_label:
        raise TlfError(f"--relabel gives an image one class; {splits.name} is multi-label (label sets)",
                       hint="correct the label sets in the table itself")
    if relabel:
        changed = 0
        for line, row in _rows(relabel):
            if len(row) < 2 or not row[1]:
                raise TlfError(f"{relabel}, line {line}: no new label", hint="write 'path,new_label' on each line")
            if row[1] not in splits.classes:
                raise TlfError(f"{relabel}, line {line}: unknown class {row[1]!r}",
                               hint=f"the classes of {splits.name} are: {', '.join(splits.classes)}")
            name, i = index.find(row[0], relabel, line)
            changed += int(labels[name][i] != splits.classes.index(row[1]))
            labels[name][i] = splits.classes.index(row[1])
        edits.update(relabel=relabel, relabel_sha256=file_hash(Path(relabel))[:16], relabelled=changed)
    sets = {}
    for name in ("train", "val"):
        keep = np.array([i for i in range(len(getattr(splits, name))) if i not in dropped[name]], dtype=np.int64)
        if len(keep) == 0:
            raise TlfError(f"{exclude} excludes every {name} image", hint="exclude fewer images")
        sets[name] = _subset(getattr(splits, name), keep, labels[name])
    return dataclasses.replace(splits, train=sets["train"], val=sets["val"], edits=edits)
