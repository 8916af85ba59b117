"""Class-per-folder image trees: ``ROOT/<class>/**/<image>``, optionally split in advance.

Layouts, tried in order:

1. ``ROOT/train/<class>/...`` with ``ROOT/val/``, ``ROOT/validation/`` or ``ROOT/test/``
   (first one present) as the validation split, and ``ROOT/test/`` as the held-out test split
   when a ``val/`` or ``validation/`` folder is the validation split; all must have the same classes.
2. ``ROOT/<class>/...``: split per class with a seeded shuffle (stratified, ``val_split``).

Class names are the sub-folder names, sorted. Files without an image suffix are ignored;
image files that do not decode are listed as problems and skipped (an error with ``strict``),
and so are links that lead outside their class folder and folders that cannot be read
(:mod:`tlf.data.walk`).
Decoding results are remembered under ``request.cache_dir/.checks`` by path, size and
modification time, so a later scan only decodes new or changed files.
"""
from __future__ import annotations

import hashlib
import json
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Sequence

import numpy as np

from ..errors import TlfError
from ..messages import notice
from ..safe_files import atomic_write
from .reading import check_image
from .walk import subfolders, walk_images
from .dataset import DatasetRequest, FileImageSet, Problem, Splits

TEST_FOLDER = "test"
VAL_FOLDERS = ("val", "validation", TEST_FOLDER)
CHECK_THREADS = 8
RECORD_VERSION = 1  # of the remembered scan results; bump when check_image changes


def class_folders(root: Path) -> list[str]:
    """Sorted names of the visible sub-folders of ``root`` that stay inside it."""
    return subfolders(root)[0]


def split_folders(root: Path) -> tuple[Path, Path, Path | None] | None:
    """(train, val, test or None) folders when ``root`` is split in advance, else None. ``test/``
    is the validation split when there is no ``val/`` nor ``validation/``, else the test split
    (unless it holds no class folders: unlabelled images, skipped with a notice)."""
    train = root / "train"
    if not train.is_dir():
        return None
    for name in VAL_FOLDERS:
        if (root / name).is_dir():
            test = root / TEST_FOLDER
            if name == TEST_FOLDER or not test.is_dir():
                return train, root / name, None
            if not class_folders(test):  # unlabelled images (a competition's test/): nothing to score
                notice(f"{test} has no class folders: it is not read as a test split", once=True)
                return train, root / name, None
            return train, root / name, test
    return None


def check_files(paths: Sequence[Path], record: Path | None = None) -> list[Problem]:
    """Decode every file cheaply (:func:`check_image`, in threads); one problem per failure.

    With ``record`` (a JSON file), results are remembered by path, size and modification time,
    and only new or changed files are decoded on later scans.
    """
    known = _read_record(record) if record is not None else {}
    stamps = []
    for path in paths:
        try:
            st = path.stat()
            stamps.append([st.st_size, st.st_mtime_ns])
        except OSError:
            stamps.append(None)
    todo = [i for i, (p, stamp) in enumerate(zip(paths, stamps))
            if stamp is None or known.get(str(p), [None, None])[:2] != stamp]
    with ThreadPoolExecutor(CHECK_THREADS) as pool:
        fresh = dict(zip(todo, pool.map(check_image, [paths[i] for i in todo])))
    reasons = [fresh[i] if i in fresh else known[str(p)][2] for i, p in enumerate(paths)]
    if record is not None and todo:
        results = {str(p): [*stamp, r] for p, stamp, r in zip(paths, stamps, reasons) if stamp is not None}
        text = json.dumps({"version": RECORD_VERSION, "files": results})
        try:
            atomic_write(record, lambda f: f.write(text))
        except TlfError:
            pass  # a read-only cache only costs time
    return [Problem(str(p), r) for p, r in zip(paths, reasons) if r is not None]


def _read_record(record: Path) -> dict[str, list]:
    """Remembered results ``{path: [size, mtime_ns, reason or None]}``; empty when missing or unusable."""
    try:
        data = json.loads(record.read_text())
    except (OSError, ValueError):
        return {}
    files = data.get("files") if isinstance(data, dict) and data.get("version") == RECORD_VERSION else None
    if not isinstance(files, dict):
        return {}
    return {k: v for k, v in files.items() if isinstance(v, list) and len(v) == 3}


def check_record(request: DatasetRequest, root: Path) -> Path:
    """Where the scan results of the tree at ``root`` are remembered (under the dataset cache)."""
    digest = hashlib.sha256(str(root).encode()).hexdigest()[:16]
    return Path(request.cache_dir) / ".checks" / f"{root.name}-{digest}.json"


def stratified_split(labels: np.ndarray, val_split: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices (train, val): each class shuffled with its own seeded generator and cut at
    ``round(n * val_split)`` (at least one of each side when the class has two images or more).

    The split of a class depends only on the seed, the class index and its own files.
    """
    if not 0.0 < val_split < 1.0:
        raise TlfError(f"val_split must be between 0 and 1, got {val_split}", hint="e.g. --val-split 0.2")
    train, val = [], []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        idx = idx[np.random.default_rng([seed, int(c)]).permutation(len(idx))]
        n_val = min(max(round(len(idx) * val_split), 1), len(idx) - 1) if len(idx) > 1 else 0
        val.append(idx[:n_val])
        train.append(idx[n_val:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(val))


def _scan(folder: Path, classes: list[str]) -> tuple[list[Path], list[int], list[Problem]]:
    """Each class folder's images (:func:`tlf.data.walk.walk_images`: links followed only inside
    that class folder, so no image gets another class's label), and what the walks skipped."""
    paths, labels, problems = [], [], subfolders(folder)[1]
    for label, name in enumerate(classes):
        found, skipped = walk_images(folder / name)
        paths += found
        labels += [label] * len(found)
        problems += skipped
    return paths, labels, problems


def _drop_unreadable(paths: list[Path], labels: list[int], problems: list[Problem]) -> tuple[list[Path], list[int]]:
    bad = {p.path for p in problems}
    kept = [(p, y) for p, y in zip(paths, labels) if str(p) not in bad]
    return [p for p, _ in kept], [y for _, y in kept]


def _require_images(where: Path, classes: list[str], labels: list[int]) -> None:
    counts = np.bincount(np.asarray(labels, dtype=np.int64), minlength=len(classes))
    empty = [c for c, n in zip(classes, counts) if n == 0]
    if empty:
        raise TlfError(f"class folder(s) without readable images in {where}: {', '.join(empty)}",
                       hint="add images (jpg, png, ...) to them or remove the folders")


def _check_classes(root: Path, classes: list[str]) -> None:
    if not classes:
        raise TlfError(f"no class folders in {root}",
                       hint="put each class's images in a sub-folder named after the class: ROOT/<class>/*.jpg")
    if len(classes) == 1:
        inner = root / classes[0]
        nested = inner.is_dir() and len(class_folders(inner)) > 1
        raise TlfError(f"{root} has a single class folder ({classes[0]!r}); a classifier needs two or more",
                       hint=f"did you mean folder:{inner}?" if nested else "add a folder per class")


def load_folder(root: Path, request: DatasetRequest, name: str | None = None) -> Splits:
    """Scan a class-per-folder tree (see the module docstring) into :class:`Splits`."""
    name = name or f"folder:{root}"
    root = Path(os.path.abspath(Path(root).expanduser()))  # keys stay valid when the working directory changes
    if not root.is_dir():
        raise TlfError(f"dataset folder {root} does not exist" if not root.exists() else f"{root} is not a folder",
                       hint="pass the folder that holds one sub-folder per class (or train/ and val/)")
    split = split_folders(root)
    test = None
    if split is not None:
        folders = [folder for folder in split if folder is not None]
        classes = class_folders(split[0])
        _check_classes(split[0], classes)
        for other in folders[1:]:
            _same_classes(root, split[0], other, classes)
        scans = [_scan(folder, classes) for folder in folders]
        problems = [p for _, _, skipped in scans for p in skipped]
        problems += check_files([path for paths, _, _ in scans for path in paths], check_record(request, root))
        raise_if_strict(problems, request)
        sets = []
        for folder, (paths, labels, _) in zip(folders, scans):
            paths, labels = _drop_unreadable(paths, labels, problems)
            _require_images(folder, classes, labels)
            sets.append(FileImageSet(paths, labels))
        train, val = sets[:2]
        test = sets[2] if len(sets) > 2 else None
        how = f"folders {split[0].name}/ and {split[1].name}/" + (f"; test split: {split[2].name}/" if test else "")
    else:
        classes = class_folders(root)
        _check_classes(root, classes)
        paths, labels, skipped = _scan(root, classes)
        problems = skipped + check_files(paths, check_record(request, root))
        paths, labels = _drop_unreadable(paths, labels, problems)
        raise_if_strict(problems, request)
        _require_images(root, classes, labels)
        train_idx, val_idx = stratified_split(np.asarray(labels, dtype=np.int64), request.val_split, request.seed)
        train = FileImageSet([paths[i] for i in train_idx], [labels[i] for i in train_idx])
        val = FileImageSet([paths[i] for i in val_idx], [labels[i] for i in val_idx])
        how = f"stratified, val_split {request.val_split:g}, seed {request.seed}"
    return Splits(name=name, classes=classes, train=train, val=val, root=root, problems=problems, split=how, test=test)


def _same_classes(root: Path, train_dir: Path, other: Path, classes: list[str]) -> None:
    other_classes = class_folders(other)
    if classes != other_classes:
        only_train = sorted(set(classes) - set(other_classes))
        only_other = sorted(set(other_classes) - set(classes))
        raise TlfError(f"{train_dir.name}/ and {other.name}/ in {root} have different classes: "
                       f"only in {train_dir.name}/: {only_train or 'none'}; only in {other.name}/: {only_other or 'none'}",
                       hint="give every split the same class folders")


def raise_if_strict(problems: list[Problem], request: DatasetRequest) -> None:
    """With ``--strict``, the first unreadable image (and how many more) is an error."""
    if problems and request.strict:
        first = problems[0]
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise TlfError(f"unreadable image {first.path}: {first.reason}{more}",
                       hint="fix or delete the files, or drop --strict to skip them")
