"""The plan's two types: what the user asked (RunConfig) and what the loop runs (RunPlan)."""
from __future__ import annotations

import dataclasses
import typing

import pytest

from tlf.config import RunConfig
from tlf.plan import RESOLVED, RunPlan, complete


def test_a_run_plan_has_every_default_resolved():
    with pytest.raises(ValueError, match="open: " + ", ".join(RESOLVED)):
        complete(RunConfig())
    asked = RunConfig(epochs=3, image_size=32, lr=1e-3, augment="none", head_lr_scale=1.0, workers=0,
                      task="single-label", label_smoothing=0.1, dropout=0.2)
    plan = complete(asked)
    assert isinstance(plan, RunPlan) and plan.to_dict() == asked.to_dict() and complete(plan) is plan
    with pytest.raises(ValueError, match="lr='auto'"):
        dataclasses.replace(plan, lr="auto")


def test_the_plan_types_its_resolved_settings_without_none():
    """A reader and a type checker see ``lr: float``, ``epochs: int``, ``image_size: int`` on the plan."""
    asked, resolved = typing.get_type_hints(RunConfig), typing.get_type_hints(RunPlan)
    assert {name: resolved[name] for name in RESOLVED} == {"augment": str, "epochs": int, "image_size": int,
                                                          "lr": float, "head_lr_scale": float, "workers": int,
                                                          "task": str, "label_smoothing": float, "dropout": float}
    assert all(type(None) in typing.get_args(asked[name]) for name in RESOLVED)  # the user may leave them open
    assert {k: v for k, v in resolved.items() if k not in RESOLVED} == {k: v for k, v in asked.items() if k not in RESOLVED}
    assert [f.name for f in dataclasses.fields(RunPlan)] == [f.name for f in dataclasses.fields(RunConfig)]
    settings = complete(RunConfig(epochs=3, image_size=32, lr=1e-3, augment="none", head_lr_scale=1.0,
                                  workers=0, task="single-label", label_smoothing=0.1, dropout=0.2)).to_dict()
    with pytest.raises(TypeError, match="epochs"):
        RunPlan(**{k: v for k, v in settings.items() if k != "epochs"})  # a plan states every resolved setting
