"""Frozen features that do not fit in memory: kept in a memory-mapped file on disk, live passes
only when the disk cannot hold them either (tlf.features.spill)."""
from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest
import torch

import tlf
from tlf.features import cache as feature_cache
from tlf.features import spill
from tlf.rundir import load_checkpoint
from test_engine import FAST, make_colour_folder


@pytest.fixture(scope="module")
def colour_data(tmp_path_factory) -> Path:
    return make_colour_folder(tmp_path_factory.mktemp("colours"), per_class=8, val_per_class=4)


def _train(colour_data: Path, out: Path) -> tlf.Run:
    """partial:conv5: the frozen features are feature maps (the big case), and never from the feature store."""
    return tlf.train(dataset=f"folder:{colour_data}", policy="partial:conv5", epochs=2, lr=3e-3, out=str(out),
                     feature_cache="auto", quiet=True, **FAST)


def _spill_files() -> list[str]:
    folder = Path(os.environ["TLF_HOME"]) / spill.SPILL_FOLDER
    return sorted(os.listdir(folder)) if folder.exists() else []


def _assert_same_weights(a: tlf.Run, b: tlf.Run) -> None:
    first, second = load_checkpoint(a.directory)["model"], load_checkpoint(b.directory)["model"]
    for key in first:
        torch.testing.assert_close(first[key], second[key], rtol=0, atol=0, msg=key)


def test_disk_tensor_is_mapped_and_leaves_no_file(tmp_path):
    tensor = spill.disk_tensor((3, 5, 2), torch.bfloat16, tmp_path)
    tensor[1] = 2.5
    assert tensor.shape == (3, 5, 2) and tensor.dtype == torch.bfloat16 and float(tensor.sum()) == 25.0
    assert os.listdir(tmp_path) == []  # unlinked at once: the mapping holds the data


def test_features_over_the_memory_budget_spill_to_disk(colour_data, tmp_path, monkeypatch):
    """Same seeded run, in-memory cache against a budget of 0 bytes: the disk-backed cache trains the
    same weights and metrics, and leaves no file in $TLF_HOME."""
    in_memory = _train(colour_data, tmp_path / "memory")
    made: list[int] = []
    real = spill.disk_tensor

    def spy(shape, dtype, folder=None):
        tensor = real(shape, dtype, folder)
        made.append(tensor.nbytes)
        assert _spill_files() == []  # the name is gone while the run uses the mapping
        return tensor

    monkeypatch.setattr(feature_cache, "memory_budget", lambda device: 0)
    monkeypatch.setattr(spill, "disk_tensor", spy)
    on_disk = _train(colour_data, tmp_path / "disk")
    assert in_memory.summary["feature_cache"] and not in_memory.summary["feature_cache_on_disk"]
    assert on_disk.summary["feature_cache"] and on_disk.summary["feature_cache_on_disk"], on_disk.summary
    assert len(made) == 2  # training and validation features
    _assert_same_weights(in_memory, on_disk)
    assert on_disk.summary["best_val_accuracy"] == in_memory.summary["best_val_accuracy"]
    assert _spill_files() == []


def test_full_disk_falls_back_to_live_passes_loudly(colour_data, tmp_path, monkeypatch, warnings_shown):
    def full(fd, offset, length):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(feature_cache, "memory_budget", lambda device: 0)
    monkeypatch.setattr(spill.os, "posix_fallocate", full, raising=False)
    run = _train(colour_data, tmp_path / "full")
    assert not run.summary["feature_cache"]
    shown = [line for line in warnings_shown() if "fit neither in memory nor on disk" in line]
    assert len(shown) == 1 and "MiB free in" in shown[0] and "TLF_HOME" in shown[0], shown
    assert _spill_files() == []
