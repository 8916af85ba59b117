"""CIFAR-10 from its python pickles, read with numpy (no torchvision needed)."""
from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

from tlf.data.download import Archive
from tlf.data.dataset import ArrayImageSet, DatasetRequest, Splits
from tlf.errors import TlfError

from .archives import locate

# the MD5 torchvision checks and the SHA-256 Keras checks for this file (170498071 bytes)
CIFAR10 = Archive(
    url="https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
    filename="cifar-10-python.tar.gz",
    sha256="6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce",
    md5="c58f30108f718f92721af3b95e74349a",
)
FOLDER = "cifar-10-batches-py"
META = "batches.meta"
NUM_CLASSES = 10
SIDE = 32
# file name -> the batch_label the original archive stores in it
TRAIN_BATCHES = {f"data_batch_{i}": f"training batch {i} of 5" for i in range(1, 6)}
TEST_BATCH = {"test_batch": "testing batch 1 of 1"}
# the other downloads of the same data, recognised by a file they contain
OTHER_LAYOUTS = {"data_batch_1.bin": "the binary version (cifar-10-binary.tar.gz, cifar-10-batches-bin/)",
                 "data_batch_1.mat": "the MATLAB version (cifar-10-matlab.tar.gz)"}
GIVE_INSTEAD = f"give the python version instead: cifar-10-python.tar.gz extracted ({FOLDER}/), " \
               "or leave out --data-dir to download it"

# what the CIFAR pickles may construct: numpy arrays and dtypes (numpy 1.x and 2.x module names),
# and bytes as Python 3 writes them at protocol 2
_ALLOWED = {
    ("_codecs", "encode"),
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
    ("numpy", "ndarray"), ("numpy", "dtype"),
}


class _NumpyOnly(pickle.Unpickler):
    """Unpickles plain containers and numpy arrays, nothing else (no code execution)."""

    def find_class(self, module: str, name: str):
        if (module, name) not in _ALLOWED:
            raise pickle.UnpicklingError(f"{module}.{name} is not allowed in a CIFAR batch")
        if module.startswith("numpy.core"):
            module = "numpy._core" + module[len("numpy.core"):] if hasattr(np, "_core") else module
        return super().find_class(module, name)


def check_layout(folder: Path, fix: str) -> None:
    """Fail in one line when ``folder`` is another layout of CIFAR-10 or lacks a batch file."""
    for inner in (folder, *(p for p in folder.iterdir() if p.is_dir())):
        for marker, layout in OTHER_LAYOUTS.items():
            if (inner / marker).is_file():
                raise TlfError(f"{inner} holds {layout}, not the python batches the cifar10 dataset reads",
                               hint=GIVE_INSTEAD)
    if (folder / "train").is_dir() and not (folder / META).exists():
        raise TlfError(f"{folder} is a folder tree of images, not CIFAR-10's python batches",
                       hint=f"use --dataset folder:{folder} for it")
    missing = [n for n in (META, *TRAIN_BATCHES, *TEST_BATCH) if not (folder / n).is_file()]
    if missing:
        raise TlfError(f"CIFAR-10 folder {folder} lacks {', '.join(missing)}", hint=fix)


def _load(path: Path, fix: str) -> dict:
    try:
        with open(path, "rb") as f:
            data = _NumpyOnly(f, encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, ValueError, AttributeError, ImportError, IndexError,
            TypeError, MemoryError) as exc:
        what = "truncated" if isinstance(exc, EOFError) or "truncated" in str(exc) else "damaged"
        raise TlfError(f"cannot read CIFAR-10 file {path} ({what}: {exc})", hint=fix) from None
    if not isinstance(data, dict):
        raise TlfError(f"{path} holds a {type(data).__name__}, not a CIFAR-10 batch", hint=fix)
    return data


def read_classes(folder: Path, fix: str) -> list[str]:
    """The class names of ``batches.meta``; exactly CIFAR-10's ten."""
    names = _load(folder / META, fix).get(b"label_names")
    if not isinstance(names, list):
        raise TlfError(f"{folder / META} has no list of label_names", hint=fix)
    classes = [n.decode() if isinstance(n, bytes) else str(n) for n in names]
    if len(classes) != NUM_CLASSES:
        raise TlfError(f"{folder / META} names {len(classes)} classes, CIFAR-10 has {NUM_CLASSES}",
                       hint=f"{fix}; for other class lists use --dataset folder:PATH")
    return classes


def read_batch(path: Path, label: str, fix: str) -> tuple[np.ndarray, np.ndarray]:
    """(images NxHxWx3 uint8, labels int64 N) of one batch file, checked against its expected
    ``batch_label`` (a swapped or renamed file is an error)."""
    batch = _load(path, fix)
    found = batch.get(b"batch_label")
    if isinstance(found, bytes) and found.decode(errors="replace") != label:
        raise TlfError(f"{path} holds {found.decode(errors='replace')!r}, not {label!r}: batch files swapped or renamed",
                       hint=f"restore each file's original name from cifar-10-python.tar.gz ({fix})")
    try:
        data = np.asarray(batch[b"data"], dtype=np.uint8)
        labels = np.asarray(batch[b"labels"], dtype=np.int64)
    except (KeyError, TypeError, ValueError) as exc:
        raise TlfError(f"{path} is not a CIFAR-10 python batch (no {exc})", hint=GIVE_INSTEAD) from None
    if data.ndim != 2 or data.shape[1] != 3 * SIDE * SIDE or labels.shape != (len(data),):
        raise TlfError(f"{path} holds arrays of shape {data.shape} and {labels.shape}, "
                       f"not N x {3 * SIDE * SIDE} pixels with N labels", hint=fix)
    if len(labels) and (labels.min() < 0 or labels.max() >= NUM_CLASSES):
        raise TlfError(f"{path} has labels outside 0..{NUM_CLASSES - 1} (e.g. {labels[(labels < 0) | (labels >= NUM_CLASSES)][0]})",
                       hint=fix)
    # rows are channel planes (RRR..GGG..BBB): one copy to HWC per batch keeps peak memory near the result
    return data.reshape(-1, 3, SIDE, SIDE).transpose(0, 2, 3, 1).copy(), labels


def read_split(folder: Path, batches: dict[str, str], fix: str) -> tuple[np.ndarray, np.ndarray]:
    """The batches of one split, concatenated."""
    parts = [read_batch(folder / name, label, fix) for name, label in batches.items()]
    if len(parts) == 1:
        return parts[0]
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def read_cifar10(folder: Path, fix: str = "extract cifar-10-python.tar.gz again") \
        -> tuple[list[str], tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """(class names, (train images, labels), (test images, labels)) from ``cifar-10-batches-py``."""
    check_layout(folder, fix)
    classes = read_classes(folder, fix)
    return classes, read_split(folder, TRAIN_BATCHES, fix), read_split(folder, TEST_BATCH, fix)


def cifar10(argument: None, request: DatasetRequest) -> Splits:
    """CIFAR-10: the five training batches as train, the test batch as val, as uint8 arrays."""
    folder = locate(request, "cifar10", CIFAR10, FOLDER)
    fix = (f"extract cifar-10-python.tar.gz again into {request.data_dir}, or leave out --data-dir to download it"
           if request.data_dir is not None else f"delete {folder} to download it again")
    classes, (x_train, y_train), (x_val, y_val) = read_cifar10(folder, fix)
    return Splits(name="cifar10", classes=classes, root=folder,
                  train=ArrayImageSet(x_train, y_train, name="cifar10/train"),
                  val=ArrayImageSet(x_val, y_val, name="cifar10/val"),
                  split="data_batch_1..5 / test_batch")
