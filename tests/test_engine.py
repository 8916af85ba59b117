"""The training engine end to end on generated images (CPU)."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import tlf
from tlf.errors import TlfError
from tlf.rundir import load_checkpoint

COLOURS = {"red": (200, 40, 40), "green": (40, 180, 60), "blue": (50, 60, 210)}
FAST = dict(backbone="efficientnet_lite0", image_size=32, batch_size=8, workers=0, augment="none",
            device="cpu", warmup_epochs=0.0)
LR = {"scratch": 1e-2, "transfer": 1e-2}  # others: 3e-3
EPOCHS = {"scratch": 5}  # from random weights 3 epochs (27 steps) were borderline: 0.583 on today's stack; others: 3


def make_colour_folder(root: Path, per_class: int = 24, val_per_class: int = 8, size: int = 40, seed: int = 0) -> Path:
    """A train/val class tree whose classes differ by colour (learnable in a few steps)."""
    rng = np.random.default_rng(seed)
    for split, n in (("train", per_class), ("val", val_per_class)):
        for name, rgb in COLOURS.items():
            folder = root / split / name
            folder.mkdir(parents=True)
            for i in range(n):
                noise = rng.integers(-40, 40, size=(size, size, 3))
                pixels = np.clip(np.array(rgb) + noise, 0, 255).astype(np.uint8)
                Image.fromarray(pixels).save(folder / f"{i}.png")
    return root


@pytest.fixture(scope="module")
def colour_data(tmp_path_factory) -> Path:
    return make_colour_folder(tmp_path_factory.mktemp("colours"))


def run_dir_files(path: Path) -> set[str]:
    return {p.name for p in path.iterdir()}


@pytest.mark.parametrize("policy", ["scratch", "transfer", "partial:conv5", "init"])
def test_each_policy_writes_run_and_learns(colour_data, tmp_path, policy):
    epochs = EPOCHS.get(policy, 3)
    run = tlf.train(dataset=f"folder:{colour_data}", policy=policy, epochs=epochs, lr=LR.get(policy, 3e-3),
                    out=str(tmp_path), quiet=True, **FAST)
    summary = run.summary
    assert {"config.yaml", "classes.json", "metrics.jsonl", "metrics.csv", "last.pt", "best.pt", "curves.png",
            "summary.json"} <= run_dir_files(run.directory)
    assert json.loads((run.directory / "classes.json").read_text()) == ["blue", "green", "red"]
    rows = [json.loads(line) for line in (run.directory / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == list(range(1, epochs + 1))
    assert (run.directory / "metrics.csv").read_text().splitlines()[0].startswith("epoch,")
    assert summary["best_val_accuracy"] >= 0.6, summary  # chance is 1/3
    assert summary["epochs"] == epochs
    state = load_checkpoint(run.directory, "last")
    assert state["epoch"] == epochs - 1 and set(state) >= {"model", "optimizer", "scaler", "rng", "config", "classes"}


def test_feature_cache_matches_live_path(colour_data, tmp_path):
    """transfer + deterministic transform: cached-feature training equals the uncached loop."""
    common = dict(dataset=f"folder:{colour_data}", policy="transfer", epochs=2, lr=3e-3, quiet=True, **FAST)
    cached = tlf.train(out=str(tmp_path / "a"), feature_cache="auto", **common)
    live = tlf.train(out=str(tmp_path / "b"), feature_cache="off", **common)
    assert cached.summary["feature_cache"] and not live.summary["feature_cache"]
    a = load_checkpoint(cached.directory)["model"]
    b = load_checkpoint(live.directory)["model"]
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-4, atol=1e-5, msg=key)


def test_feature_cache_plan_decides_whether_and_over_how_many_views():
    """tlf.features.cache.plan_feature_cache: the trainer's one decision on caching frozen features."""
    from types import SimpleNamespace as NS

    from tlf.features.cache import CachePlan, plan_feature_cache

    stages = ["conv1", "conv2", "conv3", "conv4", "conv5"]
    model = NS(backbone=NS(stage_names=stages), frozen_stages=stages[:4])
    policy = NS(name="partial", changes_during_training=False)
    fixed, cropped = NS(batch=None, deterministic_train=True), NS(batch=None, deterministic_train=False)
    assert plan_feature_cache("auto", model, policy, fixed, False, 10) == CachePlan(4, 1)
    assert plan_feature_cache("auto", model, policy, cropped, False, 10) == CachePlan(4, 4)
    assert plan_feature_cache("auto", model, policy, cropped, False, 2) == CachePlan(4, 2)
    assert plan_feature_cache("6", model, policy, fixed, False, 3) == CachePlan(4, 3)
    assert plan_feature_cache("auto", model, policy, cropped, False, 10, resumed_views=3) == CachePlan(4, 3)
    assert plan_feature_cache("off", model, policy, fixed, False, 10) is None
    assert plan_feature_cache("auto", model, policy, fixed, True, 10) is None  # torch.distributed
    assert plan_feature_cache("auto", NS(backbone=model.backbone, frozen_stages=[]), policy, fixed, False, 10) is None
    assert plan_feature_cache("auto", model, NS(name="gradual", changes_during_training=True), fixed, False, 10) is None
    with pytest.raises(TlfError, match="--feature-cache 2 cannot be used: batch-level augmentation"):
        plan_feature_cache("2", model, policy, NS(batch=object(), deterministic_train=True), False, 10)


def test_feature_cache_build_reports_every_image():
    """The feature cache is the long silent stage of a big frozen run: it advances a progress bar."""
    from tlf.features.cache import FeatureCache

    batches = [(torch.zeros(4, 3, 8, 8, dtype=torch.uint8), torch.arange(4)) for _ in range(3)]
    seen: list[int] = []
    cache = FeatureCache.build(lambda x: x.float().flatten(1), [batches, batches], 12, torch.float32,
                               torch.device("cpu"), 1 << 30, advance=seen.append)
    assert seen == [4] * 6 and cache.views == 2 and len(cache) == 12


def test_evaluate_matches_training_accuracy(colour_data, tmp_path):
    run = tlf.train(dataset=f"folder:{colour_data}", policy="transfer", epochs=2, lr=3e-3, out=str(tmp_path),
                    quiet=True, **FAST)
    report = tlf.evaluate(run.directory, workers=0, device="cpu")
    assert report["accuracy"] == pytest.approx(run.summary["best_val_accuracy"], abs=1e-6)
    assert report["precision"] == "fp32" == run.summary["precision"]  # auto on the CPU, as in training
    assert len(report["confusion_matrix"]) == 3 and sum(map(sum, report["confusion_matrix"])) == 24
    assert (run.directory / "confusion.png").stat().st_size > 0
    fast = tlf.evaluate(run.directory, workers=0, device="cpu", precision="bf16", write=False)
    assert fast["precision"] == "bf16" and sum(map(sum, fast["confusion_matrix"])) == 24


def test_channels_last_is_the_default_and_can_be_turned_off(colour_data, tmp_path):
    """NHWC on the CPU too (faster for most backbones there), unless --no-channels-last;
    ``tlf evaluate --precision`` on the command line."""
    from click.testing import CliRunner

    from tlf.cli import cli
    run = tlf.train(dataset=f"folder:{colour_data}", policy="init", epochs=1, out=str(tmp_path), name="nhwc",
                    quiet=True, **FAST)
    stem = next(p for p in run.model.parameters() if p.dim() == 4)  # 3x3 conv on 3 channels
    assert stem.is_contiguous(memory_format=torch.channels_last)
    flags = [f"--{k.replace('_', '-')}={v}" for k, v in FAST.items()]
    result = CliRunner().invoke(cli, ["train", f"--dataset=folder:{colour_data}", "--policy=init", "--epochs=1",
                                      f"--out={tmp_path}", "--name=nchw", "--no-channels-last", "-q", "--no-report",
                                      *flags])
    assert result.exit_code == 0, result.output
    assert "channels_last: false" in (tmp_path / "nchw" / "config.yaml").read_text()
    saved = torch.load(tmp_path / "nchw" / "last.pt", weights_only=True)["model"]
    assert saved["backbone.stages.conv1.conv_stem.weight"].is_contiguous()
    result = CliRunner().invoke(cli, ["evaluate", str(tmp_path / "nchw"), "--precision", "fp32", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["precision"] == "fp32" and sum(map(sum, report["confusion_matrix"])) == 24


def test_bad_settings_are_clear_errors(colour_data, tmp_path):
    with pytest.raises(TlfError, match="did you mean 'transfer'"):
        tlf.train(dataset=f"folder:{colour_data}", policy="transfr", out=str(tmp_path), **FAST)
    with pytest.raises(TlfError, match="unknown setting"):
        tlf.train(config=tlf.RunConfig.from_dict({"epoch": 3}))


def _cli(*args: str, **kwargs) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "tlf", *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kwargs)


def test_killed_run_resumes_to_the_same_end(colour_data, tmp_path):
    args = ["train", "--dataset", f"folder:{colour_data}", "--policy", "init", "--epochs", "4", "--out", str(tmp_path),
            "--name", "killed", "--backbone", "efficientnet_lite0", "--image-size", "32", "--batch-size", "8",
            "--workers", "0", "--augment", "basic", "--device", "cpu", "--quiet", "--no-report"]
    proc = _cli(*args)
    run_dir = tmp_path / "killed"
    deadline = time.time() + 240
    while time.time() < deadline and not (run_dir / "last.pt").exists():
        time.sleep(0.2)
    assert (run_dir / "last.pt").exists(), proc.communicate()
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done_before = load_checkpoint(run_dir)["epoch"] + 1
    assert done_before < 4
    result = subprocess.run([sys.executable, "-m", "tlf", "train", "--resume", str(run_dir), "--json", "--no-report"],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)  # stdout is the JSON alone; progress went to stderr
    assert summary["epochs"] == 4
    assert "epoch 4/4" in result.stderr
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == list(range(1, 5))
    for which in ("best", "last"):
        assert set(load_checkpoint(run_dir, which)) >= {"model", "optimizer"}
    assert not list(run_dir.glob("*.tmp"))


def test_ddp_two_cpu_processes(colour_data, tmp_path):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "tlf", "train", "--dataset",
           f"folder:{colour_data}", "--policy", "transfer", "--epochs", "2", "--image-size", "32", "--batch-size", "8",
           "--workers", "0", "--augment", "none", "--device", "cpu", "--out", str(tmp_path), "--name", "ddp", "--json",
           "--quiet"]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=600,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr[-3000:]
    summaries = [line for line in result.stdout.splitlines() if line.startswith("{")]
    assert len(summaries) == 1  # rank 0 alone reports and checkpoints
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ddp"]
    assert json.loads(summaries[0])["epochs"] == 2


def test_ctrl_c_names_the_resume_command_and_the_run_resumes(colour_data, tmp_path):
    """SIGINT (Ctrl-C) mid-run: one line with the exact command that continues the run, exit 130,
    and that command finishes it."""
    import shlex
    args = ["train", "--dataset", f"folder:{colour_data}", "--policy", "init", "--epochs", "3", "--out", str(tmp_path),
            "--name", "stopped", *[f"--{k.replace('_', '-')}={v}" for k, v in FAST.items()], "--augment", "basic",
            "--quiet", "--no-report"]
    proc = _cli(*args)
    run_dir = tmp_path / "stopped"
    deadline = time.time() + 240
    while time.time() < deadline and not (run_dir / "last.pt").exists():
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    line = err.strip().splitlines()[-1]
    assert line.startswith("Interrupted after ") and " of 3 epoch(s); continue with: tlf train --resume " in line, err
    command = shlex.split(line.split("continue with: ")[1])
    assert command[:3] == ["tlf", "train", "--resume"] and Path(command[3]) == run_dir
    result = subprocess.run([sys.executable, "-m", "tlf", *command[1:], "--no-report", "--json"], capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["epochs"] == 3


def test_resume_before_the_first_checkpoint_starts_again(colour_data, tmp_path):
    first = tlf.train(dataset=f"folder:{colour_data}", policy="transfer", epochs=1, lr=1e-2, out=str(tmp_path),
                      name="early", quiet=True, **FAST)
    for name in ("last.pt", "best.pt", "summary.json"):
        (first.directory / name).unlink()  # as if killed during epoch 1
    run = tlf.train(resume=first.directory, quiet=True)
    assert run.summary["epochs"] == 1 and (run.directory / "last.pt").is_file()


def test_resume_refuses_another_config(tmp_path):
    (tmp_path / "other.yaml").write_text("epochs: 3\n")
    with pytest.raises(TlfError, match="cannot be combined"):
        tlf.train(str(tmp_path / "other.yaml"), resume=tmp_path)
