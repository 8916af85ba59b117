"""Helpers for tests of plugin loading: the example package installed with pip, hand-made
distributions, and a fresh ``tlf`` process."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Callable, Iterator

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "tlf-plugin-example"
_installs: list[tempfile.TemporaryDirectory] = []  # removed when the test session ends


@lru_cache(maxsize=1)
def example_site() -> Path:
    """A folder where pip installed ``examples/tlf-plugin-example`` (once per session; put it on sys.path)."""
    tmp = tempfile.TemporaryDirectory(prefix="tlf-example-")
    _installs.append(tmp)
    # pip builds in place: install from a copy to keep the checkout clean
    source = shutil.copytree(EXAMPLE, Path(tmp.name) / "src",
                             ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    site = Path(tmp.name) / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                    "--no-index", "--target", str(site), str(source)], check=True)
    return site


def make_dist(site: Path, name: str, version: str, modules: dict[str, str], entry_points: dict[str, str]) -> Path:
    """Install a minimal distribution into ``site`` by hand: its modules and a dist-info
    with ``tlf`` entry points (entry-point name -> module)."""
    site.mkdir(parents=True, exist_ok=True)
    for module, source in modules.items():
        (site / f"{module}.py").write_text(source)
    info = site / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    (info / "entry_points.txt").write_text("[tlf]\n" + "".join(f"{k} = {v}\n" for k, v in entry_points.items()))
    return site


def run_tlf(*args: str, paths: list[Path] = (), env: dict[str, str] | None = None,
            code: str | None = None) -> subprocess.CompletedProcess:
    """``python -m tlf ARGS`` (or ``python -c CODE``) in a fresh interpreter with ``paths`` on PYTHONPATH."""
    environ = {k: v for k, v in os.environ.items() if k not in ("TLF_LOAD_PLUGINS", "PYTHONPATH")}
    environ.update({"PYTHONPATH": os.pathsep.join(map(str, paths)), "NO_ALBUMENTATIONS_UPDATE": "1",
                    "COLUMNS": "200"}, **(env or {}))
    command = [sys.executable, "-c", code] if code else [sys.executable, "-m", "tlf", *args]
    return subprocess.run(command, capture_output=True, text=True, env=environ, timeout=120)


def one_spec_module(spec_class: str, name: str) -> str:
    """Source of a plugin module that registers one spec, e.g. ``one_spec_module("PolicySpec", "bn-only")``."""
    hook = {"DatasetSpec": "datasets", "BackboneSpec": "backbones", "PolicySpec": "policies",
            "AugmentationSpec": "augmentations"}[spec_class]
    return (f"from tlf.hookspecs import hookimpl\nfrom tlf.specs import {spec_class}\n"
            f"@hookimpl\ndef tlf_register_{hook}(register):\n"
            f"    register({spec_class}(name={name!r}, description='from a test package', factory=print))\n")


@contextmanager
def registered_specs(package: str) -> Iterator[Callable[[Any], None]]:
    """``register(spec)`` inside the block makes ``spec`` a plugin of ``package`` (1.0) in this process's
    plugin manager; each is unregistered when the block ends (a fixture's ``yield`` from it: the test)."""
    from tlf.hookspecs import hookimpl
    from tlf.pluginmanager import get_plugin_manager

    pm, names = get_plugin_manager(), []

    def register(spec: Any) -> None:
        hook = hookimpl(lambda register: register(spec))
        pm.register_object(SimpleNamespace(**{f"tlf_register_{spec.kind}": hook}), spec.name, package, "1.0")
        names.append(spec.name)
    try:
        yield register
    finally:
        for name in names:
            pm.unregister(name=name)
            pm.infos.pop(name, None)
