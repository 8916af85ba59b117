"""`tlf compare` / `tlf report` end to end on generated images (CPU, tiny backbone)."""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

import tlf
import tlf.experiments
from tlf.cli import cli
from tlf.engine import api
from tlf.hookspecs import hookimpl
from tlf.pluginmanager import get_plugin_manager

POLICIES = ["scratch", "transfer", "partial:conv5", "init"]
RUN_NAMES = ["efficientnet_lite0-scratch-s0", "efficientnet_lite0-transfer-s0",
             "efficientnet_lite0-partial_conv5-s0", "efficientnet_lite0-init-s0"]
FAST_FLAGS = ["--backbone", "efficientnet_lite0", "--image-size", "32", "--batch-size", "16", "--workers", "0",
              "--augment", "none", "--device", "cpu"]
FAST = dict(backbones="efficientnet_lite0", image_size=32, batch_size=16, workers=0, augment="none", device="cpu")
OUTPUTS = ["comparison.csv", "comparison.json", "comparison.md", "comparison.png"]




@pytest.fixture(scope="module")
def colour_data(tmp_path_factory) -> Path:
    """train/val class folders of noisy red, green and blue PNGs."""
    root = tmp_path_factory.mktemp("colours")
    rng = np.random.default_rng(0)
    for split, n in (("train", 16), ("val", 6)):
        for name, rgb in {"red": (200, 40, 40), "green": (40, 180, 60), "blue": (50, 60, 210)}.items():
            (root / split / name).mkdir(parents=True)
            for i in range(n):
                pixels = np.clip(np.array(rgb) + rng.integers(-40, 40, size=(36, 36, 3)), 0, 255).astype(np.uint8)
                Image.fromarray(pixels).save(root / split / name / f"{i}.png")
    return root


@pytest.fixture
def train_calls(monkeypatch) -> list[dict]:
    """Every tlf.train call made from now on (``resume`` or the run's name), passed through."""
    calls: list[dict] = []
    real = api.train

    def counting(*args, **kwargs):
        calls.append({"resume": kwargs.get("resume"), "name": kwargs.get("name")})
        return real(*args, **kwargs)

    monkeypatch.setattr(api, "train", counting)
    return calls


def run_cli(*args: str) -> str:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.stdout


def compare_cli(data: Path, out: Path, *extra: str) -> str:
    return run_cli("compare", "--dataset", f"folder:{data}", "--policies", ",".join(POLICIES), "--epochs", "2",
                   "--out", str(out), "--quiet", *FAST_FLAGS, *extra)


def read_csv(path: Path) -> list[dict]:
    return list(csv.DictReader(io.StringIO(path.read_text())))


@pytest.fixture(scope="module")
def finished(colour_data, tmp_path_factory) -> Path:
    """A finished four-strategy comparison, made by the CLI."""
    out = tmp_path_factory.mktemp("cmp") / "flowers-like"
    compare_cli(colour_data, out)
    return out


def test_compare_writes_tables_plot_and_four_runs(finished):
    assert sorted(p.name for p in finished.iterdir()) == sorted([*OUTPUTS, "runs"])
    assert sorted(p.name for p in (finished / "runs").iterdir()) == sorted(RUN_NAMES)
    assert (finished / "comparison.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rows = read_csv(finished / "comparison.csv")
    assert [r["policy"] for r in rows] == POLICIES
    for row, name in zip(rows, RUN_NAMES):
        summary = json.loads((finished / "runs" / name / "summary.json").read_text())
        assert summary["epochs"] == 2
        assert float(row["best_val_accuracy_mean"]) == pytest.approx(summary["best_val_accuracy"])
        assert float(row["trainable_params_mean"]) == summary["trainable_params"]
        assert row["best_val_accuracy_std"] == ""  # one seed: no spread
    params = {r["policy"]: float(r["trainable_params_mean"]) for r in rows}
    assert params["transfer"] < params["partial:conv5"] < params["init"] == params["scratch"]
    markdown = (finished / "comparison.md").read_text()
    assert all(f"| {p} | 1 |" in markdown for p in POLICIES)
    data = json.loads((finished / "comparison.json").read_text())
    assert data["settings"]["policies"] == POLICIES and len(data["runs"]) == 4
    assert all(len(run["val_accuracy"]) == 2 for run in data["runs"])


def test_rerun_of_finished_comparison_trains_nothing(finished, colour_data, train_calls):
    stamps = {p: p.stat().st_mtime_ns for p in (finished / "runs").glob("*/summary.json")}
    output = compare_cli(colour_data, finished)
    assert train_calls == []
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps
    assert "partial:conv5" in output


class CrashAt:
    """A plugin that interrupts a run after its first epoch, like Ctrl-C mid-run."""

    def __init__(self, policy: str) -> None:
        self.policy = policy

    @hookimpl
    def tlf_on_epoch_end(self, run, epoch, metrics) -> None:
        if run.config.policy == self.policy and epoch == 1:
            raise KeyboardInterrupt


def test_interrupted_comparison_finishes_only_what_is_missing(colour_data, tmp_path, train_calls):
    out = tmp_path / "cmp"
    pm = get_plugin_manager()
    pm.register_object(CrashAt("partial:conv5"), name="test-crash")
    try:
        with pytest.raises(KeyboardInterrupt):
            tlf.compare(f"folder:{colour_data}", policies=POLICIES, epochs=2, out=out, quiet=True, **FAST)
    finally:
        pm.unregister(name="test-crash")
    runs = out / "runs"
    assert [c["name"] for c in train_calls] == RUN_NAMES[:3]
    crashed = runs / RUN_NAMES[2]
    assert (crashed / "last.pt").is_file() and not (crashed / "summary.json").exists()
    assert not (runs / RUN_NAMES[3]).exists() and not (out / "comparison.csv").exists()
    (runs / RUN_NAMES[3]).mkdir()  # a run that was killed before its first checkpoint
    (runs / RUN_NAMES[3] / "config.yaml").write_text("dataset: stale\n")
    stamps = {p: p.stat().st_mtime_ns for p in runs.glob("*/summary.json")}
    train_calls.clear()

    compare_cli(colour_data, out)

    assert train_calls == [{"resume": crashed, "name": None}, {"resume": None, "name": RUN_NAMES[3]}]
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps  # finished runs untouched
    epochs = [json.loads(line)["epoch"] for line in (crashed / "metrics.jsonl").read_text().splitlines()]
    assert epochs == [1, 2]
    for name in RUN_NAMES:
        assert json.loads((runs / name / "summary.json").read_text())["epochs"] == 2
    assert [r["policy"] for r in read_csv(out / "comparison.csv")] == POLICIES


def test_rerun_with_other_settings_is_refused(finished, colour_data, train_calls):
    result = CliRunner().invoke(cli, ["compare", "--dataset", f"folder:{colour_data}", "--policies", "transfer",
                                      "--epochs", "3", "--out", str(finished), "--quiet", *FAST_FLAGS])
    assert result.exit_code == 1
    assert "other settings: epochs=2 (asked 3)" in result.output
    assert train_calls == []


def test_unknown_names_fail_before_any_run(colour_data, tmp_path, train_calls):
    for flags, expected in ((["--policies", "transfer,partial:conv5,transfr"], "did you mean 'transfer'"),
                            (["--backbones", "efficientnet_lite0,resnet_50"], "unknown backbone 'resnet_50'")):
        result = CliRunner().invoke(cli, ["compare", "--dataset", f"folder:{colour_data}", "--out", str(tmp_path),
                                          *flags])
        assert result.exit_code == 1 and expected in result.output, result.output
    assert train_calls == [] and list(tmp_path.iterdir()) == []


def test_report_rebuilds_the_comparison_from_runs(finished, tmp_path):
    rebuilt = tmp_path / "rebuilt"
    run_dirs = [str(finished / "runs" / name) for name in RUN_NAMES]
    run_cli("report", *run_dirs, "--out", str(rebuilt))
    assert sorted(p.name for p in rebuilt.iterdir()) == sorted(OUTPUTS)
    assert read_csv(rebuilt / "comparison.csv") == read_csv(finished / "comparison.csv")
    data = json.loads(run_cli("report", str(finished / "runs"), "--out", str(tmp_path / "from-folder"), "--json"))
    assert sorted(g["policy"] for g in data["groups"]) == sorted(POLICIES)


def test_report_averages_seeds_and_leaves_out_unfinished(finished, tmp_path):
    """Two copies of a run as two seeds: mean equals the run, std is 0; an unfinished run is listed as left out."""
    import shutil
    import yaml
    runs = tmp_path / "runs"
    source = finished / "runs" / RUN_NAMES[1]
    for seed in (0, 1):
        shutil.copytree(source, runs / f"copy-s{seed}")
        config = yaml.safe_load((runs / f"copy-s{seed}" / "config.yaml").read_text())
        (runs / f"copy-s{seed}" / "config.yaml").write_text(yaml.safe_dump({**config, "seed": seed}))
    shutil.copytree(source, runs / "unfinished")
    (runs / "unfinished" / "summary.json").unlink()
    result = CliRunner().invoke(cli, ["report", str(runs)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "left out 1 unfinished run" in result.stderr
    [row] = read_csv(runs / "comparison.csv")  # default --out: the folder of the runs
    summary = json.loads((source / "summary.json").read_text())
    assert row["seeds"] == "2" and float(row["best_val_accuracy_mean"]) == pytest.approx(summary["best_val_accuracy"])
    assert float(row["best_val_accuracy_std"]) == 0.0


def test_plan_uses_canonical_names_seed_by_seed():
    runs = tlf.experiments.plan_runs("synthetic", ["efficientnet_lite0"], ["freeze", "partial", "init", "transfer"],
                                     [0, 1])
    assert [(r.policy, r.seed) for r in runs] == [("transfer", 0), ("partial:conv5", 0), ("init", 0),
                                                  ("transfer", 1), ("partial:conv5", 1), ("init", 1)]
    assert runs[1].name == "efficientnet_lite0-partial_conv5-s0"


def test_report_of_several_backbones_has_a_grid(finished, tmp_path):
    import shutil
    import yaml
    for name in RUN_NAMES[:2]:
        shutil.copytree(finished / "runs" / name, tmp_path / "runs" / name)
        other = tmp_path / "runs" / name.replace("efficientnet_lite0", "resnet18")
        shutil.copytree(finished / "runs" / name, other)
        config = yaml.safe_load((other / "config.yaml").read_text())
        (other / "config.yaml").write_text(yaml.safe_dump({**config, "backbone": "resnet18"}))
    run_cli("report", str(tmp_path / "runs"), "--out", str(tmp_path))
    rows = read_csv(tmp_path / "comparison.csv")
    assert {(r["backbone"], r["policy"]) for r in rows} == {(b, p) for b in ("efficientnet_lite0", "resnet18")
                                                             for p in ("scratch", "transfer")}
    markdown = (tmp_path / "comparison.md").read_text()
    grid = markdown.split("backbone × policy")[1]
    assert "| backbone | scratch | transfer |" in grid
    assert grid.count("| efficientnet_lite0 |") == 1 and grid.count("| resnet18 |") == 1
