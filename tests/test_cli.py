"""The ``tlf`` command line, run as users run it: a fresh ``python -m tlf`` process."""
from __future__ import annotations

import json
import os
from pathlib import Path

import click
import pytest
from plugin_helpers import example_site, make_dist, one_spec_module, run_tlf

from tlf import __version__
from tlf.cli import cli

HELLO = ("import click\nfrom tlf.hookspecs import hookimpl\n"
         "@hookimpl\ndef tlf_register_commands(cli):\n"
         "    @cli.command(name={name!r})\n"
         "    def hello():\n        'Say hello.'\n        click.echo('hello from a plugin')\n")


def one_line_error(result) -> str:
    """The error line of a failed command, checking that it is the only one."""
    errors = [line for line in result.stderr.splitlines() if not line.startswith("Warning: ")]
    assert len(errors) == 1, result.stderr
    assert "Traceback" not in result.stderr
    return errors[0]


def test_help_lists_the_commands() -> None:
    result = run_tlf("--help")
    assert result.returncode == 0, result.stderr
    assert "Usage: tlf [OPTIONS] COMMAND" in result.stdout
    assert "plugins" in result.stdout and "List datasets, backbones" in result.stdout
    assert run_tlf("plugins", "--help").stdout.count("--kind") == 1


def test_version() -> None:
    result = run_tlf("--version")
    assert result.returncode == 0 and result.stdout.strip() == f"tlf, version {__version__}"


def test_unknown_command_suggests_the_close_one() -> None:
    result = run_tlf("plugns")  # ('plugin' is also close to 'explain')
    assert result.returncode == 2
    assert "Error: No such command 'plugns'. Did you mean 'plugins'?" in result.stderr


def test_unknown_plugin_name_is_one_line_with_suggestions() -> None:
    result = run_tlf("plugins", "strpes", paths=[example_site()])
    assert result.returncode == 1
    assert one_line_error(result).startswith("Error: unknown plugin 'strpes'; did you mean 'stripes'? "
                                             "('tlf plugins' lists them all")
    result = run_tlf("plugins", "--kind", "backbones", "smalcnn", paths=[example_site()])
    assert result.returncode == 1
    assert one_line_error(result).startswith("Error: unknown backbone 'smalcnn'; did you mean 'smallcnn'? "
                                             "('tlf plugins --kind backbones' lists them all")


def test_plugin_details() -> None:
    result = run_tlf("plugins", "norm-only", paths=[example_site()])
    assert result.returncode == 0, result.stderr
    assert "policy bn-only" in result.stdout and "tlf-plugin-example 0.1.0" in result.stdout
    rows = json.loads(run_tlf("plugins", "smallcnn", "--json", paths=[example_site()]).stdout)["plugins"]
    assert [(row["name"], row["details"]) for row in rows] == [("smallcnn", {"weights": None, "contracts": ["pyramid"], "facts": True})]


def test_table_lists_every_kind() -> None:
    result = run_tlf("plugins", paths=[example_site()])
    assert result.returncode == 0, result.stderr
    for usage in ("stripes[:N]", "smallcnn", "bn-only", "norm-only", "grayscale[:P]", "tlf-plugin-example 0.1.0"):
        assert usage in result.stdout
    only = run_tlf("plugins", "--kind", "policies", paths=[example_site()])
    assert "bn-only" in only.stdout and "smallcnn" not in only.stdout


def test_the_table_reads_at_80_columns_grouped_by_kind() -> None:
    lines = run_tlf("plugins", paths=[example_site()], env={"COLUMNS": "80"}).stdout.splitlines()
    assert max(len(line.rstrip()) for line in lines) <= 80
    kinds = ["datasets", "backbones", "policies", "augmentations", "loggers", "callbacks", "tasks"]
    assert [line for line in lines if line in kinds] == kinds
    assert lines.index("backbones") < next(i for i, line in enumerate(lines) if "smallcnn" in line)
    listed = {line.split()[0] for line in lines if line.startswith("  ") and line.split()}
    assert {"flowers", "folder:PATH", "resnet50", "partial[:STAGE]", "smallcnn", "grayscale[:P]"} <= listed
    assert len(lines) < 3 * len(listed)  # wrapped descriptions, not a column 13 characters wide
    smallcnn = next(i for i, line in enumerate(lines) if line.startswith("  smallcnn "))
    assert "[tlf-plugin-example 0.1.0]" in lines[smallcnn + 1]  # its description, wrapped


def test_clash_between_packages_stops_with_both_names(tmp_path: Path) -> None:
    clash = make_dist(tmp_path, "tlf-clash", "1.0", {"tlf_clash": one_spec_module("BackboneSpec", "smallcnn")},
                     {"clash": "tlf_clash"})
    result = run_tlf("plugins", paths=[example_site(), clash])
    assert result.returncode == 1
    line = one_line_error(result)
    assert "backbone name 'smallcnn' is registered twice" in line
    assert "tlf-clash" in line and "tlf-plugin-example" in line and "TLF_LOAD_PLUGINS" in line
    assert run_tlf("plugins", paths=[example_site(), clash], env={"TLF_LOAD_PLUGINS": "tlf-clash"}).returncode == 0


def test_plugin_commands(tmp_path: Path) -> None:
    site = make_dist(tmp_path, "tlf-hello", "1.0", {"tlf_hello": HELLO.format(name="hello")}, {"hello": "tlf_hello"})
    result = run_tlf("hello", paths=[site])
    assert result.returncode == 0, result.stderr
    assert result.stdout == "hello from a plugin\n"
    assert "Say hello." in run_tlf("hello", "--help", paths=[site]).stdout
    assert "hello" not in run_tlf("--help", paths=[site]).stdout  # tlf's own help loads no plugin


def test_plugin_command_cannot_take_a_core_name(tmp_path: Path) -> None:
    site = make_dist(tmp_path, "tlf-sneaky", "1.0", {"tlf_sneaky": HELLO.format(name="plugins")},
                     {"sneaky": "tlf_sneaky"})
    result = run_tlf("plugins", paths=[site])
    assert result.returncode == 1
    assert one_line_error(result) == ("Error: command 'plugins' is provided twice: by package tlf and by package "
                                      "tlf-sneaky (uninstall one of them, or list the packages to load in "
                                      "TLF_LOAD_PLUGINS)")


def test_failing_command_hook_is_reported_and_skipped(tmp_path: Path) -> None:
    site = make_dist(tmp_path, "tlf-oops", "1.0", {"tlf_oops": (
        "from tlf.hookspecs import hookimpl\n@hookimpl\ndef tlf_register_commands(cli):\n"
        "    raise ValueError('no commands today')\n")}, {"oops": "tlf_oops"})
    result = run_tlf("plugins", "--json", paths=[site])
    assert result.returncode == 0, result.stderr
    assert ("Warning: plugin 'tlf-oops.oops' from package tlf-oops 1.0 failed in tlf_register_commands: "
            "ValueError: no commands today; skipped") in result.stderr
    assert {f["name"] for f in json.loads(result.stdout)["failed"]} >= {"tlf-oops.oops"}


@pytest.mark.parametrize("args", [["plugins", "--json"], ["--help"]])
def test_import_tlf_and_the_cli_do_not_import_torch(args: list[str]) -> None:
    code = ("import sys, runpy\nimport tlf\nassert 'torch' not in sys.modules, 'import tlf imported torch'\n"
            f"sys.argv = ['tlf', *{args!r}]\n"
            "try:\n    runpy.run_module('tlf', run_name='__main__')\nexcept SystemExit as exit:\n"
            "    assert not exit.code, exit.code\n"
            "heavy = sorted({'torch', 'torchvision', 'timm', 'albumentations', 'cv2'} & set(sys.modules))\n"
            f"assert not heavy, f'tlf {' '.join(args)} imported {{heavy}}'\n")
    result = run_tlf(code=code, paths=[example_site()])
    assert result.returncode == 0, result.stderr


def test_json_writes_custom_spec_fields_as_text(tmp_path: Path) -> None:
    site = make_dist(tmp_path, "tlf-custom", "1.0", {"tlf_custom": (
        "import dataclasses, pathlib\nfrom tlf.hookspecs import hookimpl\nfrom tlf.specs import DatasetSpec\n"
        "@dataclasses.dataclass(frozen=True)\nclass FolderSpec(DatasetSpec):\n    root: pathlib.Path = None\n"
        "@hookimpl\ndef tlf_register_datasets(register):\n"
        "    register(FolderSpec(name='mine', description='d', factory=print, root=pathlib.Path('/data/x')))\n")},
        {"custom": "tlf_custom"})
    result = run_tlf("plugins", "mine", "--json", paths=[site])
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["plugins"][0]["details"]["root"] == "/data/x"


def _options(command: click.Command) -> list[click.Option]:
    """Every option of ``command`` and of its subcommands, all the way down."""
    found = [p for p in command.params if isinstance(p, click.Option)]
    if isinstance(command, click.Group):
        ctx = click.Context(command)
        for name in command.list_commands(ctx):
            found += _options(command.get_command(ctx, name))
    return found


def test_a_short_flag_means_one_thing_in_every_command() -> None:
    """``-b`` is ``--backbone`` everywhere; the long names of one short flag may differ only
    in form (``--policy``/``--policies``, ``--out`` DIR/``--output`` FILE)."""
    meaning: dict[str, set[str]] = {}
    for option in _options(cli):
        longs = [o[2:] for o in option.opts if o.startswith("--")]
        for short in (o for o in option.opts if not o.startswith("--")):
            meaning.setdefault(short, set()).update(longs)
    assert {s: sorted(ls) for s, ls in meaning.items() if len(os.path.commonprefix(sorted(ls))) < 3} == {}



# --- text from plugins, data and the command line is never read as rich markup --------------

def test_brackets_in_names_descriptions_and_paths_are_printed_as_they_are(tmp_path: Path) -> None:
    from _data_helpers import make_class_tree
    site = make_dist(tmp_path / "site", "tlf-brackets", "1.0", {"brackets": (
        "from tlf.hookspecs import hookimpl\nfrom tlf.specs import PolicySpec\n"
        "@hookimpl\ndef tlf_register_policies(register):\n"
        "    register(PolicySpec(name='brackets', description='closes [/x] what it never opened',"
        " factory='tlf.policies:TransferPolicy'))\n")}, {"brackets": "brackets"})
    listed = run_tlf("plugins", paths=[site])
    assert listed.returncode == 0 and "closes [/x] what it never opened" in listed.stdout, listed.stderr
    root = make_class_tree(tmp_path / "a[" / "b]", {"red": 3, "blue": 3})  # the path holds "[/b]"
    shown = run_tlf("data", "show", f"folder:{root}")
    assert shown.returncode == 0 and f"folder:{root}" in shown.stdout, shown.stderr


def test_a_reporter_line_with_a_stray_closing_tag_is_printed(capsys) -> None:
    from tlf.engine.progress import Reporter
    from tlf import messages
    with messages.scope():
        Reporter().info("[bold]tlf[/bold] folder:data/a[/b] · resnet18")
    assert "folder:data/a[/b] · resnet18" in capsys.readouterr().err


def test_help_and_version_load_no_third_party_plugin(tmp_path: Path) -> None:
    """A plugin that hangs at import hung 'tlf --help'; only TLF_LOAD_PLUGINS= got out."""
    site = make_dist(tmp_path, "tlf-hangs", "1.0", {"hangs": "import time\ntime.sleep(3600)\n"}, {"hangs": "hangs"})
    for args in (["--help"], ["--version"], ["train", "--help"], ["predict", "--help"]):
        result = run_tlf(*args, paths=[site])  # run_tlf times out after 120 s
        assert result.returncode == 0 and "Traceback" not in result.stderr, (args, result.stderr)
    assert run_tlf("plugins", paths=[site], env={"TLF_LOAD_PLUGINS": ""}).returncode == 0
