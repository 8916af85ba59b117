"""Hostile files where images are read: FIFOs, link loops, decompression bombs (tiny files that
declare huge or extremely elongated images). Each is refused before decoding, reported by name,
and the good images of the same call survive."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from _data_helpers import make_class_tree, write_image
from tlf.data.folder import load_folder
from tlf.data.reading import UnreadableImage, check_image, image_size, read_rgb
from tlf.data.dataset import DatasetRequest
from tlf.errors import TlfError

pytestmark = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")


def fifo(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    os.mkfifo(path)
    return path


def strip_png(path: Path, width: int = 4000, height: int = 1) -> Path:
    """A small PNG declaring a ``width`` x ``height`` image (all black: compresses to almost nothing)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("L", (width, height)).save(path)
    return path


def finishes(fn, *args, fifos: tuple[Path, ...] = (), timeout: float = 10.0):
    """Run ``fn(*args)`` in a thread; (done, result or exception). A reader left blocked on one of
    ``fifos`` is released by opening it for writing, so a failing test does not hang the suite."""
    box: list = []

    def target():
        try:
            box.append(fn(*args))
        except BaseException as exc:  # noqa: BLE001 - handed back to the test
            box.append(exc)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        for _ in range(20):  # a pool may open the FIFO again after a release
            for path in fifos:
                try:
                    os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))
                except OSError:  # no reader at this moment
                    pass
            thread.join(0.25)
        return False, None
    return True, box[0]


def test_a_fifo_is_refused_not_read(tmp_path):
    pipe = fifo(tmp_path / "x.jpg")
    done, error = finishes(read_rgb, pipe, fifos=(pipe,))
    assert done, "read_rgb blocked on a FIFO"
    assert isinstance(error, UnreadableImage) and "not a regular file (a FIFO)" in error.reason
    done, reason = finishes(check_image, pipe, fifos=(pipe,))
    assert done and "not a regular file" in reason
    done, size = finishes(image_size, pipe, fifos=(pipe,))
    assert done and size is None


def test_elongated_and_oversized_images_are_refused_before_decoding(tmp_path, monkeypatch):
    strip = strip_png(tmp_path / "strip.png", 100_000, 1)
    assert strip.stat().st_size < 2000  # a tiny file
    with pytest.raises(UnreadableImage, match="too elongated"):
        read_rgb(strip)
    assert "too elongated" in check_image(strip)
    assert image_size(strip) is None
    import tlf.data.reading as reading
    monkeypatch.setattr(reading, "MAX_PIXELS", 40 * 40 - 1)
    square = write_image(tmp_path / "square.png", size=(40, 40))
    with pytest.raises(UnreadableImage, match="image too large"):
        read_rgb(square)
    assert read_rgb(write_image(tmp_path / "small.png", size=(39, 40))).shape == (40, 39, 3)


def test_dataset_scan_reports_hostile_files_and_keeps_the_rest(tmp_path):
    root = make_class_tree(tmp_path / "data", {"a": 4, "b": 4})
    pipe = fifo(root / "a" / "pipe.jpg")
    strip = strip_png(root / "b" / "strip.png")
    loop = root / "b" / "loop.jpg"
    loop.symlink_to(loop)
    done, splits = finishes(load_folder, root, DatasetRequest(cache_dir=tmp_path / "cache", val_split=0.25),
                            fifos=(pipe,))
    assert done, "the dataset scan blocked on a FIFO"
    assert not isinstance(splits, BaseException), splits
    reasons = {Path(p.path).name: p.reason for p in splits.problems}
    assert set(reasons) == {"pipe.jpg", "strip.png", "loop.jpg"}
    assert "not a regular file" in reasons["pipe.jpg"] and "too elongated" in reasons["strip.png"]
    assert "symbolic links" in reasons["loop.jpg"]
    assert len(splits.train) + len(splits.val) == 8


def test_runtime_bounds_in_memory_images_too(tmp_path):
    from onnx_helpers import export_small
    from tlf.runtime import OnnxClassifier

    _, report = export_small(tmp_path, "resnet18", 32, exporter="torchscript")
    classifier = OnnxClassifier(report.path)
    with pytest.raises(TlfError, match="too elongated"):
        classifier.preprocess(np.zeros((1, 2000, 3), np.uint8))
    with pytest.raises(TlfError, match="too elongated"):
        classifier.preprocess(Image.new("RGB", (2000, 1)))
    assert classifier.preprocess(np.zeros((40, 60, 3), np.uint8)).shape == (3, 32, 32)


def test_predict_reports_each_hostile_file_and_classifies_the_good_ones(tmp_path):
    from onnx_helpers import export_small

    _, report = export_small(tmp_path, "resnet18", 32, exporter="torchscript")
    folder = tmp_path / "images"
    for i in range(3):
        write_image(folder / f"{i}.png", seed=i, size=(40, 36))
    fifo(folder / "pipe.png")
    strip_png(folder / "strip.png")
    (folder / "loop.jpg").symlink_to(folder / "loop.jpg")
    env = {**os.environ, "NO_ALBUMENTATIONS_UPDATE": "1"}
    try:
        result = subprocess.run([sys.executable, "-m", "tlf", "predict", str(report.path), str(folder), "--json"],
                                capture_output=True, text=True, timeout=120, env=env)
    except subprocess.TimeoutExpired:
        os.close(os.open(folder / "pipe.png", os.O_WRONLY | os.O_NONBLOCK))
        pytest.fail("tlf predict blocked on a FIFO")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    rows = {Path(r["path"]).name: r for r in map(json.loads, result.stdout.splitlines())}
    assert set(rows) == {"0.png", "1.png", "2.png", "pipe.png", "strip.png", "loop.jpg"}
    assert all("labels" in rows[f"{i}.png"] for i in range(3))
    assert "not a regular file" in rows["pipe.png"]["error"]
    assert "too elongated" in rows["strip.png"]["error"]
    assert "symbolic links" in rows["loop.jpg"]["error"]
