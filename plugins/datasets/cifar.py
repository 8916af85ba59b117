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
TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_BATCH = "test_batch"

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


def _load(path: Path) -> dict:
    if not path.is_file():
        raise TlfError(f"CIFAR-10 file {path} is missing",
                       hint=f"point --data-dir at the extracted {FOLDER} folder (or its parent), "
                            "or delete the cached folder to download it again")
    try:
        with open(path, "rb") as f:
            return _NumpyOnly(f, encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, ValueError, AttributeError, ImportError) as exc:
        raise TlfError(f"cannot read CIFAR-10 file {path}: {exc}", hint="delete it and download again") from None


def _images(batches: list[dict], path: Path) -> tuple[np.ndarray, np.ndarray]:
    try:
        data = np.concatenate([np.asarray(b[b"data"], dtype=np.uint8) for b in batches])
        labels = np.concatenate([np.asarray(b[b"labels"], dtype=np.int64) for b in batches])
    except (KeyError, TypeError, ValueError) as exc:
        raise TlfError(f"{path} does not look like CIFAR-10 python batches ({exc})",
                       hint="use cifar-10-python.tar.gz, not the binary or matlab version") from None
    if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or len(data) != len(labels):
        raise TlfError(f"unexpected CIFAR-10 array shape {data.shape} in {path}", hint="delete it and download again")
    return np.ascontiguousarray(data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)), labels


def read_cifar10(folder: Path) -> tuple[list[str], tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """(class names, (train images, labels), (test images, labels)) from ``cifar-10-batches-py``."""
    meta = _load(folder / "batches.meta")
    classes = [n.decode() if isinstance(n, bytes) else str(n) for n in meta[b"label_names"]]
    train = _images([_load(folder / name) for name in TRAIN_BATCHES], folder)
    test = _images([_load(folder / TEST_BATCH)], folder)
    return classes, train, test


def cifar10(request: DatasetRequest) -> Splits:
    """CIFAR-10: the five training batches as train, the test batch as val, as uint8 arrays."""
    folder = locate(request, "cifar10", CIFAR10, FOLDER)
    classes, (x_train, y_train), (x_val, y_val) = read_cifar10(folder)
    return Splits(name="cifar10", classes=classes, root=folder,
                  train=ArrayImageSet(x_train, y_train, name="cifar10/train"),
                  val=ArrayImageSet(x_val, y_val, name="cifar10/val"),
                  split="data_batch_1..5 / test_batch")
