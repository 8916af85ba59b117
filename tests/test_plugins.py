"""Plugin loading, validation and the registry: entry points, failures, clashes, look-ups."""
from __future__ import annotations

import json
import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pluggy
import pytest
from plugin_helpers import example_site, make_dist, one_spec_module, run_tlf

from tlf.errors import TlfError
from tlf.hookspecs import hookimpl
from tlf.pluginmanager import PluginManager, get_plugin_manager
from tlf.registry import Registry, get_registry
from tlf.specs import AugmentationSpec, BackboneSpec, DatasetSpec, PolicySpec

EXAMPLE_PLUGINS = {("dataset", "stripes"), ("backbone", "smallcnn"), ("policy", "bn-only"), ("logger", "jsonl"),
                   ("augmentation", "grayscale"), ("callback", "target-accuracy")}


def plugin(**hooks: Any) -> SimpleNamespace:
    """A plugin object whose functions are marked as hook implementations."""
    return SimpleNamespace(**{name: hookimpl(function) for name, function in hooks.items()})


def registering(*specs: Any) -> Any:
    """A registration hook that registers ``specs``."""
    def hook(register: Any) -> None:
        for spec in specs:
            register(spec)
    return hook


def dataset(name: str, **fields: Any) -> DatasetSpec:
    return DatasetSpec(name=name, description=f"the {name} dataset", factory=lambda arg, request: (arg, request),
                       **fields)


def registry_of(*plugins: tuple[str, str, object]) -> Registry:
    """A registry over fresh plugin objects given as (name, package, plugin)."""
    pm = PluginManager()
    for name, package, obj in plugins:
        pm.register_object(obj, name, package, "1.0")
    return Registry(pm)


def loaded(monkeypatch: pytest.MonkeyPatch, *sites: Path) -> PluginManager:
    """A plugin manager that loaded the entry points of the built-ins and ``sites``."""
    for site in sites:
        monkeypatch.syspath_prepend(str(site))
    pm = PluginManager()
    pm.load_entry_points()
    return pm


# --- the example package, installed with pip ---------------------------------------------------

def test_example_package_is_listed_with_its_package() -> None:
    result = run_tlf("plugins", "--json", paths=[example_site()])
    assert result.returncode == 0, result.stderr
    listing = json.loads(result.stdout)
    mine = [row for row in listing["plugins"] if row["package"] == "tlf-plugin-example"]
    assert {(row["kind"], row["name"]) for row in mine} == EXAMPLE_PLUGINS
    assert {row["version"] for row in mine} == {"0.1.0"}
    module = next(m for m in listing["modules"] if m["package"] == "tlf-plugin-example")
    assert module["name"] == "tlf-plugin-example.example"
    assert set(module["hooks"]) == {"tlf_register_datasets", "tlf_register_backbones", "tlf_register_policies",
                                    "tlf_register_augmentations", "tlf_register_loggers", "tlf_register_callbacks"}


def test_example_dataset_through_the_registry(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from tlf.data import DatasetRequest

    registry = Registry(loaded(monkeypatch, example_site()))
    splits = registry.create("datasets", "stripes:10", DatasetRequest(cache_dir=tmp_path, val_split=0.2, seed=3))
    assert splits.classes == ["horizontal", "vertical"]
    assert (len(splits.train), len(splits.val)) == (16, 4)
    assert sorted(splits.val.labels.tolist()) == [0, 0, 1, 1]
    image = splits.train.load(0)
    assert image.shape == (32, 32, 3) and image.dtype.name == "uint8"
    again = registry.create("datasets", "stripes:10", DatasetRequest(cache_dir=tmp_path, val_split=0.2, seed=3))
    assert again.val.fingerprint() == splits.val.fingerprint()
    with pytest.raises(TlfError, match="images per class"):
        registry.create("datasets", "stripes:many", DatasetRequest(cache_dir=tmp_path))


def test_example_backbone_learns_the_example_dataset(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import torch
    from tlf.data import DatasetRequest
    from tlf.models import BackboneRequest, Classifier, build_head

    registry = Registry(loaded(monkeypatch, example_site()))
    torch.manual_seed(0)
    backbone = registry.create("backbones", "smallcnn", BackboneRequest(pretrained=False))
    assert backbone.meta.feature_dim == 256 and backbone.meta.weights is None
    assert backbone.resolve_stage("block3") == "conv3"
    x = torch.zeros(1, 3, 32, 32)
    sizes = []
    for stage in backbone.stages:
        x = stage(x)
        sizes.append(x.shape[-1])
    assert sizes == [16, 8, 4, 2, 1]  # output stride 2, 4, ..., 32
    assert backbone(torch.zeros(2, 3, 28, 28)).shape == (2, 256, 1, 1)  # the course's 28 px
    assert backbone(torch.zeros(2, 3, 64, 64)).shape == (2, 256, 2, 2)

    splits = registry.create("datasets", "stripes:24", DatasetRequest(cache_dir=tmp_path, val_split=0.25))
    model = Classifier(backbone, build_head("linear", (256, 1, 1), 2, 0.0), 2)

    def tensors(images: Any) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.from_numpy(images.images).permute(0, 3, 1, 2).float().div(255).sub(0.5).div(0.5)
        return x, torch.from_numpy(images.labels)

    (x, y), (x_val, y_val) = tensors(splits.train), tensors(splits.val)
    optimizer = torch.optim.Adam(model.parameters(), 1e-3)
    for _ in range(12):  # reaches 100% on 24 of 24 seeds tried
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()
    model.eval()
    with torch.no_grad():
        assert (model(x_val).argmax(1) == y_val).float().mean() >= 0.9

    path = tmp_path / "smallcnn.pt"
    torch.save(backbone.state_dict(), path)
    again = registry.create("backbones", "smallcnn", BackboneRequest(pretrained=True, weights=path))
    assert again.meta.weights == str(path)
    assert torch.equal(again.stages.conv5.block5.conv.weight, backbone.stages.conv5.block5.conv.weight)
    with pytest.raises(TlfError, match="'smallcnn' has no pretrained weights"):
        registry.create("backbones", "smallcnn", BackboneRequest(pretrained=True))


def test_example_policy_trains_only_norm_layers_and_head(monkeypatch: pytest.MonkeyPatch) -> None:
    from tlf.models import BackboneRequest, Classifier, build_head, is_norm
    from tlf.policies import PolicyRequest

    registry = Registry(loaded(monkeypatch, example_site()))
    backbone = registry.create("backbones", "resnet18", BackboneRequest(pretrained=False))
    model = Classifier(backbone, build_head("linear", (backbone.meta.feature_dim, 1, 1), 3, 0.2), 3)
    policy = registry.create("policies", "norm-only", PolicyRequest())
    assert policy.name == "bn-only" and policy.pretrained
    policy.apply(model)
    norm_params = {id(p) for m in backbone.modules() if is_norm(m) for p in m.parameters(recurse=False)}
    trainable = {id(p) for p in model.parameters() if p.requires_grad}
    assert norm_params and trainable == norm_params | {id(p) for p in model.head.parameters()}
    model.train()
    assert not any(m.training for m in backbone.modules() if is_norm(m))  # running statistics stay frozen
    grouped = [p for group in policy.param_groups(model, 1e-3, 1e-4) for p in group["params"]]
    assert {id(p) for p in grouped} == trainable and len(grouped) == len(trainable)


def test_example_augmentation_through_the_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    augment = pytest.importorskip("tlf.augment")
    import numpy as np

    registry = Registry(loaded(monkeypatch, example_site()))
    request = augment.AugmentRequest(image_size=32, mean=(0.5,) * 3, std=(0.5,) * 3, interpolation="bilinear",
                                     crop_pct=1.0, num_classes=2, seed=0)
    augmentation = registry.create("augmentations", "grayscale:1", request)
    assert augmentation.batch is None and not augmentation.crops
    image = np.random.default_rng(0).integers(0, 256, (8, 8, 3), dtype=np.uint8)
    for transform in augmentation.image:
        image = transform(image=image)["image"]
    assert image.shape == (8, 8, 3) and (image[..., 0] == image[..., 2]).all()
    with pytest.raises(TlfError, match="between 0 and 1"):
        registry.create("augmentations", "grayscale:2", request)


# --- loading: failures, TLF_LOAD_PLUGINS, clashes ----------------------------------------------

def broken_site(tmp_path: Path) -> Path:
    return make_dist(tmp_path / "broken", "tlf-broken", "1.0", {"tlf_broken": "raise RuntimeError('boom')\n"},
                     {"broken": "tlf_broken"})


def test_broken_package_is_reported_and_skipped(tmp_path: Path) -> None:
    result = run_tlf("plugins", "--json", paths=[example_site(), broken_site(tmp_path)])
    assert result.returncode == 0, result.stderr
    listing = json.loads(result.stdout)
    failed = {f["name"]: f for f in listing["failed"]}
    assert failed["tlf-broken.broken"]["package"] == "tlf-broken"
    assert failed["tlf-broken.broken"]["error"] == "failed to load: RuntimeError: boom"
    assert EXAMPLE_PLUGINS <= {(row["kind"], row["name"]) for row in listing["plugins"]}
    assert ("Warning: plugin 'tlf-broken.broken' from package tlf-broken 1.0 failed to load: RuntimeError: boom"
            in result.stderr)
    assert "Traceback" not in result.stderr


def test_broken_package_is_named_in_the_table_and_in_lookups(tmp_path: Path) -> None:
    paths = [example_site(), broken_site(tmp_path)]
    result = run_tlf("plugins", paths=paths)
    assert result.returncode == 0, result.stderr
    assert "plugin error: tlf-broken.broken (tlf-broken 1.0) failed to load: RuntimeError: boom" in result.stdout
    assert "smallcnn" in result.stdout
    result = run_tlf("plugins", "--kind", "datasets", "nope", paths=paths)
    assert result.returncode == 1
    assert re.search(r"^Error: unknown dataset 'nope' \(.*these plugins failed to load: [^)]*tlf-broken.broken",
                     result.stderr, re.M)


def test_load_plugins_env_restricts_external_packages(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                      warnings_shown) -> None:
    other = make_dist(tmp_path / "other", "tlf-other", "2.0", {"tlf_other": one_spec_module("DatasetSpec", "other")},
                     {"other": "tlf_other"})
    packages = lambda pm: {info.distribution for info in pm.infos.values()}  # noqa: E731
    assert {"tlf-plugin-example", "tlf-other"} <= packages(loaded(monkeypatch, example_site(), other))
    monkeypatch.setenv("TLF_LOAD_PLUGINS", " TLF_Plugin_Example ")  # names compare as pip compares them
    assert packages(loaded(monkeypatch, example_site(), other)) - {"tlf"} == {"tlf-plugin-example"}
    monkeypatch.setenv("TLF_LOAD_PLUGINS", "")
    assert packages(loaded(monkeypatch, example_site(), other)) <= {"tlf"}
    monkeypatch.setenv("TLF_LOAD_PLUGINS", "tlf-other,tlf-missing")
    warnings_shown()
    pm = loaded(monkeypatch, example_site(), other)
    assert [w for w in warnings_shown() if w.startswith("TLF_LOAD_PLUGINS names 'tlf-missing'")]
    assert packages(pm) - {"tlf"} == {"tlf-other"}


def test_name_clash_is_an_error_naming_both_packages(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    clash = make_dist(tmp_path / "clash", "tlf-clash", "1.0", {"tlf_clash": one_spec_module("PolicySpec", "bn-only")},
                     {"clash": "tlf_clash"})
    with pytest.raises(TlfError, match="policy name 'bn-only' is registered twice: by package "
                                       "tlf-clash .* and by package tlf-plugin-example"):
        Registry(loaded(monkeypatch, example_site(), clash))
    monkeypatch.setenv("TLF_LOAD_PLUGINS", "tlf-plugin-example")  # the way out the hint names
    assert Registry(loaded(monkeypatch, example_site(), clash)).find("bn-only")[0].plugin == "tlf-plugin-example"


def test_alias_clash_names_both_packages() -> None:
    with pytest.raises(TlfError, match="dataset name 'cifar' is registered twice: by package a .cifar10. "
                                       "and by package b .cifar."):
        registry_of(("a.p", "a", plugin(tlf_register_datasets=registering(dataset("cifar10", aliases=("cifar",))))),
                    ("b.p", "b", plugin(tlf_register_datasets=registering(dataset("cifar")))))


# --- hook validation ---------------------------------------------------------------------------

def test_misspelled_hook_is_rejected_with_a_suggestion() -> None:
    pm = PluginManager()
    with pytest.raises(pluggy.PluginValidationError, match="unknown hook 'tlf_register_dataset'; "
                                                           "did you mean 'tlf_register_datasets'"):
        pm.register_object(plugin(tlf_register_dataset=registering()), "typo")
    assert not pm.has_plugin("typo") and "typo" not in pm.infos


def test_hook_without_hookimpl_marker_is_rejected() -> None:
    def tlf_register_policies(register: Any) -> None:
        register(PolicySpec(name="p", description="a policy", factory=print))

    with pytest.raises(pluggy.PluginValidationError, match="not marked with @hookimpl"):
        PluginManager().register_object(SimpleNamespace(tlf_register_policies=tlf_register_policies), "unmarked")


def test_hook_with_wrong_arguments_is_rejected() -> None:
    with pytest.raises(pluggy.PluginValidationError, match="registry"):
        PluginManager().register_object(plugin(tlf_register_datasets=lambda registry: None), "wrong")


def test_misspelled_hook_in_a_package_is_reported_not_fatal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                           warnings_shown) -> None:
    site = make_dist(tmp_path / "typo", "tlf-typo", "0.3", {"tlf_typo": (
        "from tlf.hookspecs import hookimpl\n@hookimpl\ndef tlf_register_backbone(register):\n    pass\n")},
        {"typo": "tlf_typo"})
    pm = loaded(monkeypatch, site)
    assert [w for w in warnings_shown() if re.search("'tlf-typo.typo' from package tlf-typo 0.3 failed to load: "
                                                     "PluginValidationError: .*did you mean 'tlf_register_backbones'", w)]
    assert not pm.has_plugin("tlf-typo.typo")
    assert [info.name for info in pm.failures() if info.distribution == "tlf-typo"] == ["tlf-typo.typo"]


def test_failing_registration_hook_keeps_none_of_its_specs(warnings_shown) -> None:
    def half(register: Any) -> None:
        register(dataset("first"))
        raise KeyError("second")

    registry = registry_of(("good", "good-pkg", plugin(tlf_register_datasets=registering(dataset("fine")))),
                           ("bad", "bad-pkg", plugin(tlf_register_datasets=half)))
    assert warnings_shown() == ["plugin 'bad' from package bad-pkg 1.0 failed in half: KeyError: 'second'; skipped"]
    assert [spec.name for spec in registry.specs("datasets")] == ["fine"]
    assert [info.name for info in registry.pm.failures()] == ["bad"]


def test_spec_of_the_wrong_kind_is_a_plugin_failure(warnings_shown) -> None:
    policy = PolicySpec(name="p", description="a policy", factory=print)
    registry = registry_of(("mixed", "m", plugin(tlf_register_datasets=registering(policy))))
    assert [w for w in warnings_shown() if "registered PolicySpec as datasets; expected DatasetSpec" in w]
    assert list(registry.specs()) == []


def test_lifecycle_hooks_get_their_arguments_and_a_failing_one_does_not_stop_the_others(warnings_shown) -> None:
    seen = []

    def crash(epoch: int) -> None:
        raise OSError("disk full")

    pm = PluginManager()
    pm.register_object(plugin(tlf_on_epoch_end=lambda epoch, metrics: seen.append((epoch, metrics))), "logger")
    pm.register_object(plugin(tlf_on_epoch_end=crash), "crashy", "crashy-pkg", "2.1")
    pm.register_object(plugin(tlf_on_epoch_end=lambda run: seen.append(run)), "other")
    pm.notify("tlf_on_epoch_end", run="RUN", epoch=3, metrics={"val_acc": 0.5})
    assert warnings_shown() == ["plugin 'crashy' from package crashy-pkg 2.1 failed in crash: OSError: disk full; skipped"]
    assert seen == [(3, {"val_acc": 0.5}), "RUN"]


@pytest.mark.parametrize("fields, message", [
    ({"name": "two words"}, "invalid datasets plugin name"),
    ({"name": "a:b"}, "invalid datasets plugin name"),
    ({"aliases": "abc"}, "aliases must be a tuple"),
    ({"aliases": ("ok", "")}, "invalid datasets plugin name ''"),
    ({"description": ""}, "one-line description"),
    ({"factory": "not callable"}, "is neither callable nor a 'module:attr' reference"),
    ({"argument_required": True}, "needs an argument metavar"),
])
def test_invalid_specs_are_refused(fields: dict, message: str) -> None:
    values = {"name": "x", "description": "a dataset", "factory": print, **fields}
    with pytest.raises(ValueError, match=message):
        DatasetSpec(**values)


# --- look-ups ----------------------------------------------------------------------------------

@pytest.fixture
def registry() -> Registry:
    specs = [
        BackboneSpec(name="resnet50", description="ResNet-50", factory=lambda arg, request: ("resnet50", request),
                     aliases=("r50",)),
        BackboneSpec(name="timm", description="any timm model", factory=lambda arg, request: ("timm", arg),
                     argument="MODEL", argument_required=True),
    ]
    policy = PolicySpec(name="partial", description="freeze up to a stage", factory=lambda arg: ("partial", arg),
                        argument="STAGE")
    augmentation = AugmentationSpec(name="mixup", description="mixup", factory=print, batch_level=True)
    return registry_of(("core", "tlf", plugin(tlf_register_backbones=registering(*specs),
                                              tlf_register_policies=registering(policy),
                                              tlf_register_augmentations=registering(augmentation))))


def test_resolve_splits_the_argument_and_follows_aliases(registry: Registry) -> None:
    assert registry.resolve("policies", "partial:conv5")[1] == "conv5"
    assert registry.resolve("policies", "partial")[1] is None
    assert registry.resolve("backbones", "r50")[0].name == "resnet50"
    spec, argument = registry.resolve("backbones", "timm:convnext_tiny")  # the fake factories return tuples,
    assert spec.factory(argument, "request") == ("timm", "convnext_tiny")  # which create() would refuse
    spec, argument = registry.resolve("backbones", "r50")
    assert spec.factory(argument, "request") == ("resnet50", "request")
    assert registry.find("resnet50")[0].plugin == "tlf"


@pytest.mark.parametrize("kind, text, message", [
    ("backbones", "resnet5", r"unknown backbone 'resnet5'; did you mean 'resnet50'\? "
                             r"\('tlf plugins --kind backbones' lists them all\)"),
    ("backbones", "resnet50:x", "backbone 'resnet50' takes no argument, got 'resnet50:x'"),
    ("backbones", "timm", r"backbone 'timm' needs an argument \(write it as 'timm:MODEL'\)"),
    ("policies", "partal:conv4", "did you mean 'partial'"),
    ("heads", "x", "unknown plugin kind 'heads'"),
])
def test_lookup_errors_explain_the_fix(registry: Registry, kind: str, text: str, message: str) -> None:
    with pytest.raises(TlfError, match=message):
        registry.resolve(kind, text)


def test_find_suggests_across_kinds(registry: Registry) -> None:
    with pytest.raises(TlfError, match=r"unknown plugin 'mixpu'; did you mean 'mixup'"):
        registry.find("mixpu")


def test_global_registry_follows_new_registrations() -> None:
    pm = get_plugin_manager()
    pm.register_object(plugin(tlf_register_datasets=registering(dataset("test-only-data"))), "test-only")
    try:
        assert get_registry().find("test-only-data")[0].plugin == "__main__"
    finally:
        pm.unregister(name="test-only")
        del pm.infos["test-only"]
    with pytest.raises(TlfError):
        get_registry().find("test-only-data")


def test_factory_and_parse_may_be_module_attr_references() -> None:
    """Every kind's spec takes a "module:attr" factory (imported when built) or a plain callable,
    and its ``parse`` turns ARG's text into the factory's argument."""
    from tlf.arguments import integer
    from tlf.errors import TlfError
    from tlf.specs import PolicySpec
    lazy = PolicySpec(name="p", description="d", factory="operator:add", argument="N", parse="tlf.arguments:integer")
    assert lazy.build("3", 4) == 7
    plain = PolicySpec(name="q", description="d", factory=lambda argument, request: (argument, request),
                       argument="N", parse=integer)
    assert plain.build("3", "request") == (3, "request") and plain.build(None, "request") == (None, "request")
    with pytest.raises(TlfError, match=r"policy 'q': bad argument 'x': 'x' is not a valid integer"):
        plain.build("x", "request")
    with pytest.raises(ValueError, match="neither callable nor a 'module:attr' reference"):
        PolicySpec(name="r", description="d", factory="operator add")
