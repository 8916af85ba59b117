"""Learning-rate schedules: shapes, warm-up, plateau state, per-group ratios."""
from __future__ import annotations

import math

import pytest
import torch

from tlf.engine.optim import set_lr
from tlf.engine.schedules import ONECYCLE_DIV, ONECYCLE_FINAL_DIV, PLATEAU_FACTOR, Schedule


def test_cosine_warms_up_then_decays_to_zero():
    s = Schedule("cosine", total_steps=110, warmup_steps=10)
    assert [s(i) for i in range(3)] == pytest.approx([1 / 11, 2 / 11, 3 / 11])
    assert s(10) == pytest.approx(1.0)
    assert s(60) == pytest.approx(0.5)
    assert s(109) == pytest.approx(0.5 * (1 + math.cos(math.pi * 99 / 100)))
    assert s(110) == pytest.approx(0.0, abs=1e-12)


def test_onecycle_rises_from_lr_over_25_and_ends_near_zero():
    s = Schedule("onecycle", total_steps=100, warmup_steps=50)  # its own rise: 30% of the steps
    assert s(0) == pytest.approx(1 / ONECYCLE_DIV)
    assert s(30) == pytest.approx(1.0)
    assert s(15) == pytest.approx((1 + 1 / ONECYCLE_DIV) / 2)
    assert s(100) == pytest.approx(1 / ONECYCLE_DIV / ONECYCLE_FINAL_DIV)
    assert all(s(i) < s(i + 1) for i in range(30)) and all(s(i) > s(i + 1) for i in range(30, 100))


def test_step_and_constant():
    step = Schedule("step", total_steps=90, warmup_steps=0)
    assert [step(0), step(29), step(30), step(59), step(60), step(89)] == pytest.approx([1, 1, 0.1, 0.1, 0.01, 0.01])
    constant = Schedule("constant", total_steps=90, warmup_steps=9)
    assert constant(4) == pytest.approx(0.5) and constant(9) == constant(89) == 1.0


def test_plateau_lowers_after_two_stale_epochs_and_resumes_its_state():
    s = Schedule("plateau", total_steps=100, warmup_steps=0)
    lowered = [s.end_of_epoch(acc) for acc in (0.5, 0.6, 0.6, 0.55)]
    assert lowered == [False, False, False, True]
    assert s(50) == pytest.approx(PLATEAU_FACTOR)
    again = Schedule("plateau", total_steps=100, warmup_steps=0)
    again.load_state_dict(s.state_dict())
    assert again(50) == s(50) and again.state_dict() == s.state_dict()
    assert not Schedule("cosine", 10, 0).end_of_epoch(0.1)


def test_every_group_keeps_its_ratio():
    params = [torch.nn.Parameter(torch.zeros(1)) for _ in range(2)]
    optimizer = torch.optim.SGD([{"params": [params[0]], "lr": 1e-2}, {"params": [params[1]], "lr": 1e-4}], lr=1e-2)
    s = Schedule("onecycle", total_steps=20, warmup_steps=0)
    for step in (0, 7, 19):
        set_lr(optimizer, s(step))
        head, body = (g["lr"] for g in optimizer.param_groups)
        assert head / body == pytest.approx(100.0)
        assert head == pytest.approx(1e-2 * s(step))
