"""Defaults that hold on any dataset size: epochs from a minimum number of optimizer steps,
the new head's lr multiplier, explicit values untouched, the choice recorded."""
from __future__ import annotations

import json

import pytest
import yaml

import tlf
from tlf.adaptive_defaults import MAX_EPOCHS_FACTOR, adapt, adaptive_epochs
from tlf.engine.trainer import Trainer
from tlf.plan import plan_run
from tlf.policies import build_policy

from test_engine import FAST, make_colour_folder  # noqa: F401  (same tiny colour data)



@pytest.fixture(scope="module")
def colours(tmp_path_factory):
    return f"folder:{make_colour_folder(tmp_path_factory.mktemp('colours'))}"  # 72 train images, 3 classes


@pytest.mark.parametrize("steps_per_epoch, epochs", [
    (45, 15),  # flowers, all 2934 images at batch 64: today's 15 epochs (675 steps) stay
    (15, 20),  # 1000 images: raised to 20 x 15 = 300 steps
    (3, 60),  # 250 images: 100 wanted, capped at 4 x 15
    (1, 60),  # 50 images
])
def test_epochs_reach_the_minimum_steps_within_the_cap(steps_per_epoch, epochs):
    chosen, why = adaptive_epochs(15, 300, steps_per_epoch)
    assert chosen == epochs
    assert chosen >= 15 and chosen <= MAX_EPOCHS_FACTOR * 15
    assert ("capped" in why) == (epochs * steps_per_epoch < 300)
    assert why.startswith("the policy's 15") == (epochs == 15)


def test_unset_values_are_chosen_from_the_policy_and_explicit_ones_win():
    defaults = build_policy("partial:conv5").defaults
    plan = tlf.RunConfig(policy="partial:conv5", lr=3e-4)
    adapted, choices = adapt(plan, defaults, steps_per_epoch=4)
    assert (adapted.epochs, adapted.head_lr_scale) == (60, 3.0)
    assert [c.setting for c in choices] == ["epochs", "head_lr_scale"]
    assert choices[0].policy_default == 15 and "300 optimizer steps" in choices[0].why
    given = tlf.RunConfig(policy="partial:conv5", lr=3e-4, epochs=15, head_lr_scale=1.0)  # the fixed ones, by flags
    assert adapt(given, defaults, steps_per_epoch=4) == (given, [])
    assert build_policy("transfer").defaults["head_lr_scale"] == 1.0
    assert build_policy("init").defaults["head_lr_scale"] == 1.0


def test_the_head_group_trains_at_its_multiple_of_the_trained_stages_lr(colours, tmp_path):
    trainer = Trainer(plan_run(tlf.RunConfig(dataset=colours, policy="partial:conv4", lr=1e-4, out=str(tmp_path),
                                             **FAST)), quiet=True, open_run_dir=False)
    steps = len(trainer.parts.train_loader)  # 72 images at batch 8: 9 steps an epoch
    assert trainer.config.epochs == -(-300 // steps) == 34
    lrs = {g["name"]: g["lr"] for g in trainer.optimizer.param_groups}
    assert lrs["head"] == pytest.approx(3e-4) and lrs["head.no_decay"] == pytest.approx(3e-4)
    stages = [lr for name, lr in lrs.items() if name.startswith("conv")]
    assert len(stages) == len(lrs) - 2 >= 2 and stages == [pytest.approx(1e-4)] * len(stages)
    old = Trainer(plan_run(tlf.RunConfig(dataset=colours, policy="partial:conv4", lr=1e-4, epochs=15,
                                         head_lr_scale=1.0, out=str(tmp_path), **FAST)), quiet=True, open_run_dir=False)
    assert old.config.epochs == 15 and old.defaults_chosen == []
    assert [g["lr"] for g in old.optimizer.param_groups] == [pytest.approx(1e-4)] * len(lrs)


def test_the_choice_is_printed_and_recorded_in_config_and_summary(colours, tmp_path, capsys):
    # patience 1: the run stops early, its plan still says 40 epochs
    run = tlf.train(dataset=colours, policy="transfer", out=str(tmp_path), patience=1, **{**FAST, "batch_size": 72})
    printed = " ".join(capsys.readouterr().err.split())
    assert "defaults for 72 training images: epochs 40 (raised from the policy's 10 toward 300 optimizer steps" \
        in printed
    assert yaml.safe_load((run.directory / "config.yaml").read_text())["epochs"] == 40
    summary = json.loads((run.directory / "summary.json").read_text())
    assert summary["planned_epochs"] == 40 and summary["head_lr_scale"] == 1.0
    assert [(c["setting"], c["value"], c["policy_default"]) for c in summary["defaults_chosen"]] == [
        ("epochs", 40, 10), ("head_lr_scale", 1.0, 1.0)]
