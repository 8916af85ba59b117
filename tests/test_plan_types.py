"""The plan's two types: what the user asked (RunConfig) and what the loop runs (RunPlan)."""
from __future__ import annotations

import dataclasses

import pytest

from tlf.config import RunConfig
from tlf.plan import RESOLVED, RunPlan, complete


def test_a_run_plan_has_every_default_resolved():
    with pytest.raises(ValueError, match="open: " + ", ".join(RESOLVED)):
        complete(RunConfig())
    asked = RunConfig(epochs=3, image_size=32, lr=1e-3, augment="none", head_lr_scale=1.0, workers=0)
    plan = complete(asked)
    assert isinstance(plan, RunPlan) and plan.to_dict() == asked.to_dict() and complete(plan) is plan
    with pytest.raises(ValueError, match="lr='auto'"):
        dataclasses.replace(plan, lr="auto")
