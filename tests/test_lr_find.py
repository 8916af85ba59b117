"""The lr range test: its suggestion on a known curve, restored state, --lr auto, errors."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import yaml
from click.testing import CliRunner

import tlf
from tlf.cli import cli
from tlf.engine.lr_find import find_lr, suggest
from tlf.engine.trainer import Trainer
from tlf.errors import TlfError

from test_engine import FAST, make_colour_folder


@pytest.fixture(scope="module")
def colours(tmp_path_factory):
    return f"folder:{make_colour_folder(tmp_path_factory.mktemp('colours'))}"


def test_suggestion_lands_in_the_descending_part_of_a_known_curve():
    lrs = np.logspace(-6, 1, 200)
    x = np.log10(lrs)
    # flat until 1e-4, falls until 1e-1 (steepest around 1e-2.5), then explodes
    losses = np.where(x < -4, 2.3, 2.3 - 2.0 * (1 - np.cos(np.pi * np.clip((x + 4) / 3, 0, 1))) / 2)
    losses = np.where(x > -1, losses[np.argmin(np.abs(x + 1))] + 5 * (x + 1) ** 2, losses)
    lr = suggest(list(lrs), list(losses))
    assert 1e-4 < lr < 1e-1
    assert abs(np.log10(lr) + 2.5) < 0.1


def test_a_dip_of_the_first_noisy_steps_is_not_the_suggestion():
    """flowers' range test (transfer, 184 steps from 1e-7) began with a 0.02 dip over its first
    three steps, steeper point-to-point than the real descent; the suggestion was 1.3e-7."""
    lrs = np.logspace(-7, 0.4, 184)
    x = np.log10(lrs)
    losses = np.where(x < -4, 1.70, 1.70 - 0.65 * (1 - np.cos(np.pi * np.clip((x + 4) / 3, 0, 1))) / 2)
    losses = np.where(x > -1, losses[np.argmin(np.abs(x + 1))] + 3 * (x + 1) ** 2, losses)
    losses[1:4] -= [0.02, 0.015, 0.005]  # the first steps' noise, as the smoothed curve showed it
    lr = suggest(list(lrs), list(losses))
    assert 1e-3 < lr < 1e-1


def test_a_loss_rising_from_the_start_is_an_error():
    lrs = list(np.logspace(-6, 1, 50))
    with pytest.raises(TlfError, match="did not fall"):
        suggest(lrs, list(np.linspace(1, 3, 50)))


@pytest.fixture
def trainer(colours, tmp_path):
    from tlf.plan import plan_run
    config = tlf.RunConfig(dataset=colours, policy="partial:conv5", epochs=2, lr=1e-3, out=str(tmp_path), ema=0.9,
                           **FAST)
    trainer = Trainer(plan_run(config), quiet=True, open_run_dir=False)
    trainer.prepare()
    return trainer


def test_finder_restores_weights_and_optimizer_bit_identically(trainer):
    trainer.optimizer.step()  # some optimizer state to restore
    before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    optimizer_before = trainer.optimizer.state_dict()
    ema_before = {k: v.clone() for k, v in trainer.ema.state_dict().items()}
    rng = torch.get_rng_state()
    finding = find_lr(trainer, steps=40)
    assert len(finding.lrs) >= 5 and finding.lrs[0] == pytest.approx(1e-7)
    assert finding.lrs[0] <= finding.suggestion <= finding.lrs[-1]
    after = trainer.model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert all(torch.equal(ema_before[k], v) for k, v in trainer.ema.state_dict().items())
    assert trainer.optimizer.state_dict()["param_groups"] == optimizer_before["param_groups"]
    assert torch.equal(torch.get_rng_state(), rng)
    assert trainer.step == 0


def test_finder_errors(trainer):
    with pytest.raises(TlfError, match="diverged at once"):
        find_lr(trainer, steps=20, start=1e12, end=1e13)
    trainer.model.requires_grad_(False)
    with pytest.raises(TlfError, match="--lr auto needs trainable parameters"):
        find_lr(trainer)


def test_lr_auto_records_the_chosen_lr(colours, tmp_path):
    run = tlf.train(dataset=colours, policy="transfer", epochs=1, lr="auto", out=str(tmp_path), name="auto",
                    quiet=True, **FAST)
    chosen = run.summary["lr"]
    assert isinstance(chosen, float) and chosen == run.summary["lr_find"]["suggested_lr"]
    assert yaml.safe_load((run.directory / "config.yaml").read_text())["lr"] == chosen
    assert (run.directory / "lr_find.png").stat().st_size > 0


def test_lr_find_command(colours, tmp_path):
    flags = [f"--{k.replace('_', '-')}={v}" for k, v in FAST.items()]
    result = CliRunner().invoke(cli, ["lr-find", f"--dataset={colours}", "--policy=transfer", "--steps=30",
                                      f"--plot={tmp_path / 'lr.png'}", "--json", "-q", *flags])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["steps"] <= 30 and out["rule"].startswith("steepest descent") and (tmp_path / "lr.png").is_file()
    bad = CliRunner().invoke(cli, ["train", "--lr", "fast"])
    assert bad.exit_code == 2 and "neither a number nor auto" in bad.output


def test_the_range_test_steps_over_the_runs_effective_batch(colours, tmp_path, monkeypatch):
    """With --accumulate N each of the range test's steps accumulates N micro-batches, as the run's steps do."""
    sizes = []
    step = Trainer.training_step
    monkeypatch.setattr(Trainer, "training_step", lambda self, batches: sizes.append([len(y) for _, y in batches])
                        or step(self, batches))
    tlf.train(dataset=colours, policy="transfer", epochs=1, lr="auto", accumulate=2, out=str(tmp_path), quiet=True,
              **{**FAST, "batch_size": 4})
    assert sizes and all(len(step_sizes) == 2 for step_sizes in sizes[:-1])  # the last may end an epoch early
    assert max(size for step_sizes in sizes for size in step_sizes) == 4  # micro-batches of --batch-size images
