"""Shared test set-up: offline albumentations, an isolated TLF_HOME, and plugin packages
installed into temp dirs."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

os.environ["NO_ALBUMENTATIONS_UPDATE"] = "1"

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "tlf-plugin-example"


@pytest.fixture(autouse=True)
def _tlf_home(tmp_path_factory, monkeypatch):
    """Every test gets its own empty $TLF_HOME (caches, downloads)."""
    monkeypatch.setenv("TLF_HOME", str(tmp_path_factory.mktemp("tlf_home")))


@pytest.fixture(scope="session")
def example_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder where pip installed ``examples/tlf-plugin-example`` (put it on sys.path)."""
    tmp = tmp_path_factory.mktemp("example")
    # pip builds in place: install from a copy to keep the checkout clean
    source = shutil.copytree(EXAMPLE, tmp / "src", ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    site = tmp / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                    "--no-index", "--target", str(site), str(source)], check=True)
    return site
