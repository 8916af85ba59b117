"""The plan's one resolution, in order: a backbone's preprocessing facts from its spec before
anything is built (a third-party backbone without them: its built meta's), the built model
checked against them, --lr auto as the last step, each choice recorded."""
from __future__ import annotations

import dataclasses
import json

import pytest
import yaml

import tlf
from plugin_helpers import registered_specs
from tlf.config import RunConfig
from tlf.engine.callback import Callback
from tlf.errors import TlfError
from tlf.plan import Resolution, RunPlan
from tlf.preprocessing import BackboneFacts, Preprocessing
from tlf.specs import BackboneSpec, CallbackSpec

FACTS = BackboneFacts(image_size=48, mean=(0.5,) * 3, std=(0.25,) * 3, interpolation="bicubic", crop_pct=0.8)
TINY = dict(dataset="synthetic:train=12,val=4,size=32,classes=3", epochs=1, batch_size=8, workers=0, device="cpu",
            augment="none", pretrained=False, warmup_epochs=0.0)


def resnet18_as(name: str, image_size: int):
    """A backbone factory: torchvision's resnet18 whose meta says ``name`` and ``image_size``."""
    def factory(argument, request):
        from tlf.plugins.backbones.torchvision_models import build
        body = build("resnet18", request)
        body.meta = dataclasses.replace(body.meta, name=name, image_size=image_size)
        return body
    return factory


@pytest.fixture
def backbone_plugin():
    """``backbone_plugin(name, factory, **spec_fields)``: a backbone plugin of package tlf-third, for one test."""
    with registered_specs("tlf-third") as register:
        yield lambda name, factory, **fields: register(
            BackboneSpec(name=name, description=f"the {name} backbone", factory=factory, **fields))


def never_built(argument, request):
    raise AssertionError("the model was built")


def test_the_image_size_and_preprocessing_are_known_before_anything_is_built(backbone_plugin):
    backbone_plugin("stated", never_built, facts=lambda argument: FACTS)
    resolution = Resolution.begin(RunConfig(backbone="stated"))
    assert resolution.config.image_size == 48 and resolution.facts == FACTS
    assert resolution.preprocessing() == Preprocessing(48, 60, (0.5,) * 3, (0.25,) * 3, "bicubic")
    (choice,) = resolution.chosen
    assert (choice.setting, choice.value) == ("image_size", 48) and "stated's pretrained recipe" in choice.why
    asked = Resolution.begin(RunConfig(backbone="stated", image_size=32))  # a size asked for wins, no choice
    assert asked.config.image_size == 32 and asked.chosen == () and asked.preprocessing().image_size == 32
    lite2 = Resolution.begin(RunConfig(backbone="efficientnet_lite2"))  # a built-in: timm's pretrained config
    assert (lite2.config.image_size, lite2.preprocessing().resize) == (260, 292)


def test_a_backbone_without_facts_takes_them_from_its_built_model(backbone_plugin, tmp_path):
    backbone_plugin("factless", resnet18_as("factless", 32))
    resolution = Resolution.begin(RunConfig(backbone="factless"))
    assert resolution.facts is None and resolution.config.image_size is None
    run = tlf.train(backbone="factless", out=str(tmp_path), quiet=True, **TINY)
    assert yaml.safe_load((run.directory / "config.yaml").read_text())["image_size"] == 32
    assert json.loads((run.directory / "preprocessing.json").read_text())["image_size"] == 32
    chosen = {c["setting"]: c for c in run.summary["defaults_chosen"]}
    assert chosen["image_size"]["value"] == 32 and "built model" in chosen["image_size"]["why"]


def test_a_built_model_that_contradicts_its_spec_facts_is_the_plugins_bug(backbone_plugin, tmp_path):
    backbone_plugin("liar", resnet18_as("liar", 32), facts=lambda argument: FACTS)
    with pytest.raises(TlfError, match=r"backbone plugin 'liar' from package tlf-third built liar with preprocessing "
                                       r"BackboneFacts\(image_size=32.*but its spec states BackboneFacts\(image_size=48"):
        tlf.train(backbone="liar", out=str(tmp_path), quiet=True, **TINY)
    backbone_plugin("untyped", never_built, facts=lambda argument: {"image_size": 48})
    with pytest.raises(TlfError, match="'untyped' from package tlf-third stated its facts as dict, expected "
                                       "tlf.preprocessing.BackboneFacts"):
        Resolution.begin(RunConfig(backbone="untyped"))


def test_lr_auto_is_the_last_step_and_is_recorded():
    defaults = {"lr": 1e-3, "epochs": 10, "min_steps": 1, "head_lr_scale": 1.0}
    tested = []

    def range_test() -> tuple[float, str]:
        tested.append(1)
        return 0.02, "steepest descent"

    given = Resolution(RunConfig(lr=0.1, image_size=32, workers=0, augment="none", task="single-label", label_smoothing=0.1,
                                 dropout=0.2)).with_data(defaults, 4)
    assert given.with_lr(defaults, range_test) is given and tested == []
    auto = dataclasses.replace(given, config=dataclasses.replace(given.config, lr="auto"))
    with pytest.raises(ValueError, match="lr='auto'"):
        auto.complete()  # the plan is not complete before its last step
    plan = auto.with_lr(defaults, range_test).complete()
    assert tested == [1] and plan.lr == 0.02 and plan.epochs == 10
    assert [(c.setting, c.value, c.policy_default) for c in auto.with_lr(defaults, range_test).chosen][-1] == \
        ("lr", 0.02, 1e-3)


def test_lr_auto_is_resolved_before_the_loop_starts(tmp_path):
    """``before_fit`` already sees the complete RunPlan (its lr the range test's) and an optimizer at that lr."""
    seen = []

    class Seen(Callback):
        def before_fit(self, loop) -> None:
            seen.append((type(loop.config), loop.plan.lr, {g["initial_lr"] for g in loop.optimizer.param_groups}))

    with registered_specs("tlf-third") as register:
        register(CallbackSpec(name="seen", description="what before_fit sees", factory=lambda argument, request: Seen()))
        run = tlf.train(callbacks=("seen",), lr="auto", image_size=32, out=str(tmp_path), quiet=True, **TINY)
    (kind, lr, group_lrs), = seen
    assert kind is RunPlan and lr == run.summary["lr"] == run.summary["lr_find"]["suggested_lr"] and group_lrs == {lr}
    (choice,) = [c for c in run.summary["defaults_chosen"] if c["setting"] == "lr"]
    assert choice["value"] == lr and "the lr range test's suggestion" in choice["why"]
