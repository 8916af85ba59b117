"""Packaging: the README's commands, CI's entry point and the installed entry points agree."""
from __future__ import annotations

import os
from importlib.metadata import distribution
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TEST_COMMAND = ("python3 -m venv .venv && .venv/bin/pip install -e '.[test]' && "
                ".venv/bin/python -m pytest -q -n auto --maxprocesses 4 --dist loadfile")
MAIN_COMMAND = "python3 -m venv .venv && .venv/bin/pip install -e . && .venv/bin/tlf train"


def test_readme_has_both_setup_commands() -> None:
    lines = [line.strip() for line in (ROOT / "README.md").read_text().splitlines()]
    assert MAIN_COMMAND in lines and TEST_COMMAND in lines


def test_ci_runs_the_readme_test_command() -> None:
    script = ROOT / ".ci" / "run"
    assert os.access(script, os.X_OK)
    commands = [line for line in script.read_text().splitlines() if line and not line.startswith("#")]
    assert commands[-1] == TEST_COMMAND


def test_installed_entry_points() -> None:
    tlf = distribution("tlf")
    assert {(ep.name, ep.value) for ep in tlf.entry_points.select(group="tlf")} == {
        (kind, f"tlf.plugins.{kind}") for kind in ("datasets", "backbones", "policies", "augmentations", "loggers", "callbacks",
                                                  "tasks")}
    assert [ep.value for ep in tlf.entry_points.select(group="console_scripts", name="tlf")] == ["tlf.cli:main"]
