"""The training toolkit end to end on generated images (CPU): accumulation, EMA, resume to
more epochs, --no-pretrained, schedules, imbalance settings."""
from __future__ import annotations

import json

import pytest
import torch
import yaml
from click.testing import CliRunner

import tlf
from tlf.cli import cli
from tlf.errors import TlfError
from tlf.rundir import load_checkpoint

from test_engine import FAST, make_colour_folder  # noqa: F401  (same tiny colour data)

HEAD = "head.fc.weight"


@pytest.fixture(scope="module")
def colours(tmp_path_factory):
    return f"folder:{make_colour_folder(tmp_path_factory.mktemp('colours'))}"


def test_accumulating_two_half_batches_equals_one_full_batch(colours, tmp_path):
    """72 images: batch 12 x 2 micro-batches and batch 24 take the same 3 SGD steps an epoch."""
    common = dict(dataset=colours, policy="transfer", epochs=2, lr=0.05, optimizer="sgd", dropout=0.0, quiet=True,
                  **{k: v for k, v in FAST.items() if k != "batch_size"})
    accumulated = tlf.train(out=str(tmp_path / "a"), batch_size=12, accumulate=2, **common)
    full = tlf.train(out=str(tmp_path / "b"), batch_size=24, **common)
    a, b = load_checkpoint(accumulated.directory), load_checkpoint(full.directory)
    assert a["step"] == b["step"] == 6
    torch.testing.assert_close(a["model"][HEAD], b["model"][HEAD], rtol=1e-5, atol=1e-6)


def test_resume_to_more_epochs_continues_exactly_with_ema(colours, tmp_path):
    common = dict(dataset=colours, policy="transfer", lr=1e-2, ema=0.9, schedule="constant", quiet=True, **FAST)
    straight = tlf.train(out=str(tmp_path), name="straight", epochs=2, **common)
    short = tlf.train(out=str(tmp_path), name="short", epochs=1, **common)
    longer = tlf.train(resume=short.directory, epochs=2, quiet=True)
    assert longer.summary["epochs"] == 2 and longer.summary["planned_epochs"] == 2
    assert yaml.safe_load((short.directory / "config.yaml").read_text())["epochs"] == 2
    a, b = load_checkpoint(straight.directory), load_checkpoint(short.directory)
    assert set(a["ema"]) == set(b["ema"]) and "n_averaged" in a["ema"]
    for key in (f"module.{HEAD}", "n_averaged"):
        torch.testing.assert_close(a["ema"][key], b["ema"][key], rtol=0, atol=0, msg=key)
    torch.testing.assert_close(a["model"][HEAD], b["model"][HEAD], rtol=0, atol=0)
    assert not torch.equal(a["ema"][f"module.{HEAD}"], a["model"][HEAD])
    with pytest.raises(TlfError, match=r"--epochs 1 is fewer than the 2 the run planned \(it is at epoch 2 of 2\)"):
        tlf.train(resume=short.directory, epochs=1)


def test_best_checkpoint_holds_the_weights_that_validated_best(colours, tmp_path):
    """Every epoch validates the raw and the EMA weights; best.pt, the summary and evaluate agree."""
    run = tlf.train(dataset=colours, policy="transfer", epochs=3, lr=3e-2, ema=0.5, out=str(tmp_path), quiet=True,
                    **FAST)
    rows = [json.loads(line) for line in (run.directory / "metrics.jsonl").read_text().splitlines()]
    assert all("ema_val_acc" in r for r in rows)
    best = load_checkpoint(run.directory, "best")
    summary = run.summary
    assert best["weights"] == summary["best_weights"]
    assert summary["best_val_accuracy"] == max(max(r["val_acc"], r["ema_val_acc"]) for r in rows)
    report = tlf.evaluate(run.directory, workers=0, device="cpu", write=False)
    assert report["accuracy"] == pytest.approx(summary["best_val_accuracy"], abs=1e-6)
    if best["weights"] == "ema":
        torch.testing.assert_close(best["model"][HEAD], best["ema"][f"module.{HEAD}"])


def test_no_pretrained_starts_from_random_weights(colours, tmp_path):
    from tlf.models import build_model
    flags = [f"--{k.replace('_', '-')}={v}" for k, v in FAST.items()]
    result = CliRunner().invoke(cli, ["train", f"--dataset={colours}", "--policy=transfer", "--epochs=1", "-q",
                                      f"--out={tmp_path}", "--name=random", "--no-pretrained", *flags])
    assert result.exit_code == 0, result.output
    assert yaml.safe_load((tmp_path / "random" / "config.yaml").read_text())["pretrained"] is False
    stem = "backbone.stages.conv1.conv_stem.weight"
    frozen = load_checkpoint(tmp_path / "random")["model"][stem]  # transfer: the backbone never trains
    pretrained = build_model("efficientnet_lite0", 3, pretrained=True).state_dict()[stem]
    assert frozen.shape == pretrained.shape and not torch.allclose(frozen, pretrained)


def test_schedule_and_imbalance_settings_reach_the_run(colours, tmp_path):
    run = tlf.train(dataset=colours, policy="transfer", epochs=3, lr=1e-2, schedule="step", class_weights="auto",
                    sampler="balanced", out=str(tmp_path), quiet=True, **FAST)
    rows = [json.loads(line) for line in (run.directory / "metrics.jsonl").read_text().splitlines()]
    assert [r["lr"] for r in rows] == pytest.approx([1e-2, 1e-3, 1e-4])  # x0.1 after each third
    assert run.summary["class_weights"] == pytest.approx([1.0, 1.0, 1.0])  # 24 images per class
    assert run.summary["sampler"] == "balanced" and run.summary["schedule"] == "step"


@pytest.mark.parametrize("flag, message", [
    ("--accumulate=0", "accumulate must be at least 1 and at most 65536, got 0"),
    ("--ema=1.5", "ema must be above 0 and below 1, got 1.5"),
    ("--class-weights=missing.json", "invalid class_weights 'missing.json'"),
])
def test_bad_toolkit_settings_are_one_line_errors(flag, message):
    result = CliRunner().invoke(cli, ["train", flag])
    assert result.exit_code == 1
    assert message in result.output and len(result.output.strip().splitlines()) == 1
