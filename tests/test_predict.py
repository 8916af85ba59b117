"""``tlf predict``: files, folders and globs; JSON lines or a table; per-file errors; no torch."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from onnx_helpers import CLASSES, export_small, shapes
from tlf.cli import cli
from tlf.runtime import OnnxClassifier


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """(model path, image folder): four good images (one in a sub-folder) and one broken file."""
    tmp = tmp_path_factory.mktemp("predict")
    _, report = export_small(tmp, "resnet18", 32, exporter="torchscript")
    folder = tmp / "images"
    (folder / "sub").mkdir(parents=True)
    images, _ = shapes(4, 40, seed=3, square=False)
    for i, image in enumerate(images[:3]):
        Image.fromarray(image).save(folder / f"{i}.png")
    Image.fromarray(images[3]).save(folder / "sub" / "3.jpg", quality=95)
    (folder / "broken.jpg").write_bytes(b"not an image")
    return report.path, folder


def run(*args: str):
    return CliRunner().invoke(cli, ["predict", *map(str, args)])


def test_json_lines_predict_the_rest_and_report_broken_files(setup):
    model, folder = setup
    result = run(model, folder, "--json", "-k", "2", "--batch-size", "2")
    assert result.exit_code == 1  # some file failed
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["path"] for r in rows] == [str(folder / n) for n in ("0.png", "1.png", "2.png", "broken.jpg", "sub/3.jpg")]
    broken = rows[3]
    assert "cannot identify image file" in broken["error"] and "labels" not in broken
    good = [r for r in rows if "error" not in r]
    assert all(len(r["labels"]) == 2 and set(r["labels"]) <= set(CLASSES) for r in good)
    # same answers as the Python API
    expected = OnnxClassifier(model).predict([r["path"] for r in good], top_k=2)
    assert [r["labels"] for r in good] == [p.labels for p in expected]
    assert np.allclose([r["probabilities"] for r in good], [p.probabilities for p in expected])


def test_globs_files_and_missing_paths(setup):
    model, folder = setup
    result = run(model, f"{folder}/*.png", folder / "0.png", folder / "missing.png", "--json")
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["path"] for r in rows] == [f"{folder}/{i}.png" for i in range(3)] + [str(folder / "missing.png")]
    assert rows[-1]["error"] == "no such file or folder" and result.exit_code == 1
    ok = run(model, f"{folder}/**/3.jpg", "--json")  # recursive glob
    assert ok.exit_code == 0 and [json.loads(line)["path"] for line in ok.stdout.splitlines()] == [f"{folder}/sub/3.jpg"]


def test_table_output(setup, monkeypatch):
    model, folder = setup
    monkeypatch.setenv("COLUMNS", "250")  # long temporary paths (one folder per pytest-xdist worker) stay unfolded
    result = run(model, folder / "0.png", folder / "broken.jpg")
    assert "0.png" in result.stdout and any(c in result.stdout for c in CLASSES)
    assert "unreadable" in result.stdout and "error:" in result.stderr


def test_wrong_model_is_a_one_line_error(setup, tmp_path):
    _, folder = setup
    bogus = tmp_path / "model.onnx"
    bogus.write_bytes(b"\x08\x07garbage")
    result = run(bogus, folder)
    assert result.exit_code == 1
    assert result.stderr.count("\n") == 1 and "not a loadable ONNX model" in result.stderr
    assert "Traceback" not in result.output


def test_a_run_directory_uses_its_export_or_says_how_to_make_one(setup, tmp_path):
    import shutil
    model, folder = setup
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "config.yaml").write_text("dataset: synthetic\n")
    result = run(run_dir, folder / "0.png")
    assert result.exit_code == 1 and f"run {run_dir} has no model.onnx yet (export it first: tlf export {run_dir})" \
        in result.stderr
    shutil.copy(model, run_dir / "model.onnx")
    assert run(run_dir, folder / "0.png", "--json").exit_code == 0


def test_a_checkpoint_is_explained(setup, tmp_path):
    import torch
    _, folder = setup
    torch.save({"model": {}}, tmp_path / "best.pt")
    result = run(tmp_path / "best.pt", folder / "0.png")
    assert result.exit_code == 1 and result.stderr.count("\n") == 1
    assert f"best.pt is a PyTorch checkpoint; tlf.runtime runs ONNX models (export the run first: tlf export " \
           f"{tmp_path}, then use its model.onnx)" in result.stderr


def test_predict_does_not_import_torch(setup):
    model, folder = setup
    code = ("import sys; from tlf.cli import main; sys.argv = ['tlf', 'predict', sys.argv[1], sys.argv[2], '--json'];\n"
            "try:\n    main()\nexcept SystemExit:\n    pass\n"
            "assert 'torch' not in sys.modules, 'torch was imported'")
    result = subprocess.run([sys.executable, "-c", code, model, str(folder / "0.png")], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["labels"]


def test_decode_threads_keep_order_and_answers(setup, tmp_path):
    """Many files, broken ones among them: a decode pool gives the serial run's rows, in order."""
    model, folder = setup
    images, _ = shapes(13, 40, seed=5, square=False)
    for i, image in enumerate(images):
        Image.fromarray(image).save(tmp_path / f"{i:02d}.png")
        if i % 5 == 2:
            (tmp_path / f"{i:02d}x.png").write_bytes(b"broken")
    serial = run(model, tmp_path, "--json", "--batch-size", "3", "--decode-threads", "1")
    pooled = run(model, tmp_path, "--json", "--batch-size", "3", "--decode-threads", "4")
    assert serial.exit_code == pooled.exit_code == 1
    rows = [json.loads(line) for line in pooled.stdout.splitlines()]
    assert [r["path"] for r in rows] == sorted(str(p) for p in tmp_path.iterdir())
    assert pooled.stdout == serial.stdout


def test_ordered_map_runs_on_threads_and_stays_a_bounded_window_ahead():
    import threading

    from tlf.runtime import ordered_map
    pulled = []

    def items():
        for i in range(100):
            pulled.append(i)
            yield i

    results = ordered_map(lambda i: (i, threading.current_thread().name), items(), threads=3, window=4)
    first = [next(results) for _ in range(2)]
    assert [i for i, _ in first] == [0, 1] and len(pulled) <= 4 + 2  # not the whole input at once
    rest = list(results)
    assert [i for i, _ in first + rest] == list(range(100))
    assert all(name.startswith("tlf-decode") for _, name in first + rest)


def test_a_folder_link_leading_outside_is_reported_not_read(setup, tmp_path):
    """A link to / inside a folder given to predict read the whole disk; now it is one error row."""
    model, folder = setup
    mine = tmp_path / "mine"
    mine.mkdir()
    Image.fromarray(shapes(1, 40, seed=4)[0][0]).save(mine / "a.png")
    (mine / "everything").symlink_to("/")
    (mine / "theirs.png").symlink_to(folder / "0.png")
    result = run(model, mine, "--json")
    rows = {r["path"]: r for r in map(json.loads, result.stdout.splitlines())}
    assert set(rows) == {str(mine / "a.png"), str(mine / "everything"), str(mine / "theirs.png")}
    assert "labels" in rows[str(mine / "a.png")] and result.exit_code == 1
    assert rows[str(mine / "everything")]["error"] == f"link to /, outside {mine}; not followed"


def test_a_file_name_with_brackets_is_shown_as_it_is(setup, tmp_path):
    model, folder = setup
    (tmp_path / "x[").mkdir()
    path = tmp_path / "x[" / "y].png"  # the path holds "[/y]", a closing tag rich would choke on
    Image.fromarray(shapes(1, 40, seed=4)[0][0]).save(path)
    result = CliRunner().invoke(cli, ["predict", str(model), str(path), str(tmp_path / "x[" / "z].png")],
                                env={"COLUMNS": "300"})
    assert result.exit_code == 1 and "y].png" in result.stdout, result.output
    assert f"error: {tmp_path}/x[/z].png: no file matches this pattern" in result.stderr
