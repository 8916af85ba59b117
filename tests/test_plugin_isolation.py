"""Plugin isolation: a failed plugin is skipped entirely, sys.exit in plugin code is a failure like
any other, hooks cannot rewrite what the engine records, and factories' products are checked."""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
from cli_output import said
from plugin_helpers import make_dist, run_tlf
from test_plugins import dataset, plugin, registering

import tlf
from tlf.errors import TlfError
from tlf.pluginmanager import PluginManager, get_plugin_manager
from tlf.registry import Registry
from tlf.specs import BackboneSpec, DatasetSpec, PolicySpec

HALF_BROKEN = """
import click
from tlf.hookspecs import hookimpl
from tlf.specs import PolicySpec

@hookimpl
def tlf_register_policies(register):
    register(PolicySpec(name="half-policy", description="registered before the failure", factory=print))

@hookimpl
def tlf_register_datasets(register):
    raise RuntimeError("dataset registration broke")

@hookimpl
def tlf_register_commands(cli):
    @cli.command("half-command")
    def half_command():
        click.echo("half-command ran")
"""


def test_a_plugin_failing_in_one_hook_keeps_nothing_registered(warnings_shown) -> None:
    started = []

    def broken(register: Any) -> None:
        raise RuntimeError("boom")

    policy = PolicySpec(name="kept-policy", description="a policy", factory=print)
    pm = PluginManager()
    pm.register_object(plugin(tlf_register_policies=registering(policy), tlf_register_datasets=broken,
                              tlf_on_run_start=lambda run: started.append(run)), "half", "half-pkg", "1.0")
    registry = Registry(pm)
    assert [w for w in warnings_shown() if "'half' from package half-pkg 1.0 failed in broken" in w]
    assert not pm.has_plugin("half")
    assert "kept-policy" not in registry.names("policies")
    pm.notify("tlf_on_run_start", run="RUN")
    assert started == []
    assert [info.name for info in pm.failures()] == ["half"]


def test_a_skipped_package_adds_no_command_and_no_spec(tmp_path: Path) -> None:
    site = make_dist(tmp_path / "half", "tlf-half", "1.0", {"tlf_half": HALF_BROKEN}, {"half": "tlf_half"})
    listing = run_tlf("plugins", "--json", paths=[site])
    assert listing.returncode == 0, listing.stderr
    assert "half-policy" not in {row["name"] for row in json.loads(listing.stdout)["plugins"]}
    assert "'tlf-half.half' from package tlf-half 1.0 failed in tlf_register_datasets" in listing.stderr
    assert "half-command" not in run_tlf("--help", paths=[site]).stdout
    ran = run_tlf("half-command", paths=[site])
    assert ran.returncode == 2 and "half-command ran" not in ran.stdout


def test_sys_exit_at_import_is_a_plugin_failure(tmp_path: Path) -> None:
    site = make_dist(tmp_path / "exits", "tlf-exits", "1.0", {"tlf_exits": "import sys\nsys.exit(0)\n"},
                     {"exits": "tlf_exits"})
    result = run_tlf("plugins", "--json", paths=[site])
    assert result.returncode == 0
    failed = {f["name"]: f["error"] for f in json.loads(result.stdout)["failed"]}
    assert failed["tlf-exits.exits"] == "failed to load: SystemExit: 0"
    assert "Warning: plugin 'tlf-exits.exits' from package tlf-exits 1.0 failed to load: SystemExit" in result.stderr


def test_keyboard_interrupt_from_a_plugin_still_stops_tlf() -> None:
    def interrupted(epoch: int) -> None:
        raise KeyboardInterrupt

    pm = PluginManager()
    pm.register_object(plugin(tlf_on_epoch_end=interrupted), "ctrl-c")
    with pytest.raises(KeyboardInterrupt):
        pm.notify("tlf_on_epoch_end", run=None, epoch=1, metrics={})


def test_hooks_cannot_rewrite_the_run_and_sys_exit_in_a_hook_does_not_end_it(tmp_path: Path, warnings_shown) -> None:
    def rewrite(metrics: dict) -> None:
        metrics["train_loss"] = -1.0
        metrics["epoch"] = 99

    def leave(epoch: int) -> None:
        sys.exit(0)

    def spoil(summary: dict) -> None:
        summary["best_val_accuracy"] = 2.0

    pm = get_plugin_manager()
    pm.register_object(plugin(tlf_on_epoch_end=rewrite, tlf_on_run_end=spoil), "rewriter")
    pm.register_object(plugin(tlf_on_epoch_end=leave), "leaver", "leaver-pkg", "0.1")
    try:
        run = tlf.train(dataset="synthetic:train=12,val=6", backbone="efficientnet_lite0", policy="transfer",
                        epochs=2, image_size=32, batch_size=4, workers=0, device="cpu", out=str(tmp_path),
                        quiet=True)
        assert [w for w in warnings_shown() if "'leaver' from package leaver-pkg 0.1 failed in leave: SystemExit" in w]
    finally:
        for name in ("rewriter", "leaver"):
            if pm.has_plugin(name):
                pm.unregister(name=name)
            pm.infos.pop(name, None)
    assert run.summary["epochs"] == 2 and run.summary["best_val_accuracy"] <= 1.0
    rows = [json.loads(line) for line in (run.directory / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2] and all(r["train_loss"] > 0 for r in rows)
    assert json.loads((run.directory / "summary.json").read_text())["best_val_accuracy"] <= 1.0


@pytest.mark.parametrize("kind, spec, args, returned", [
    ("datasets", DatasetSpec(name="none-data", description="returns None", factory=lambda arg, request: None),
     (None,), "NoneType"),
    ("backbones", BackboneSpec(name="text-net", description="returns a string", factory=lambda arg, request: "net"),
     (None,), "str"),
    ("policies", PolicySpec(name="int-policy", description="returns a number", factory=lambda arg, request: 3),
     (None,), "int"),
])
def test_factory_products_are_checked_naming_plugin_and_package(kind: str, spec: Any, args: tuple,
                                                                 returned: str) -> None:
    pm = PluginManager()
    pm.register_object(plugin(**{f"tlf_register_{kind}": registering(spec)}), "maker", "maker-pkg", "1.0")
    with pytest.raises(TlfError, match=f"plugin {spec.name!r} from package maker-pkg returned {returned}, expected"):
        Registry(pm).create(kind, spec.name, *args)


MANY = """from tlf.hookspecs import hookimpl
from tlf.specs import AugmentationSpec, DatasetSpec

@hookimpl
def tlf_register_datasets(register):
    for i in range(10_000):
        register(DatasetSpec(name=f"many-{i}", aliases=(f"m{i}",), description="one of many", factory=print))

@hookimpl
def tlf_register_augmentations(register):
    for i in range(10_000):
        register(AugmentationSpec(name=f"many-aug-{i}", description="one of many", factory=print))
"""


def test_a_plugin_registering_ten_thousand_specs_is_listed_and_leaves_the_rest_working(tmp_path: Path) -> None:
    site = make_dist(tmp_path / "many", "tlf-many", "1.0", {"tlf_many": MANY}, {"many": "tlf_many"})
    listing = run_tlf("plugins", "--json", paths=[site])
    assert listing.returncode == 0, listing.stderr[-2000:]
    names = {row["name"] for row in json.loads(listing.stdout)["plugins"]}
    assert {"many-0", "many-9999", "many-aug-9999", "synthetic"} <= names
    assert "train" in run_tlf("--help", paths=[site]).stdout
    typo = run_tlf("train", "--dataset", "manyy-5", "--out", str(tmp_path / "runs"), paths=[site])
    assert typo.returncode == 1 and said(typo.stderr).startswith("Error: unknown dataset 'manyy-5'; did you mean")
    broken = run_tlf("train", "--dataset", "m7", "--out", str(tmp_path / "runs"), paths=[site])
    assert broken.returncode == 1 and "from package tlf-many returned NoneType" in said(broken.stderr).splitlines()[-1]
