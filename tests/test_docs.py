"""The documentation: the site builds with ``mkdocs build --strict`` (broken links and
references fail it), the CLI reference lists every command and option, and the pages
name no path of a particular machine and tell no story of how the project was made."""
from __future__ import annotations

import html
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import click
import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = sorted((ROOT / "docs").rglob("*.md")) + [ROOT / "README.md"]
# absolute paths that are the same on every Linux machine (kernel interfaces)
SYSTEM_PATHS = ("/dev/", "/proc/")
ABSOLUTE_PATH = re.compile(r"(?<![\w.~$/:\]\)>%-])/[\w.-]+(?:/[\w.*-]*)+")
UP_PATH = re.compile(r"(?<![\w.(\]])\.\./[\w.-]+")  # ../x in text or code: outside the repository's root
SESSION = re.compile(r"(?i)(?<![\w.`])sessions?\b(?![\w.(`])")
INFERENCE = re.compile(r"(?i)(inference|onnxruntime(?:'s)?|ort)\s+$")


def _build(config: Path, site: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1", "NO_ALBUMENTATIONS_UPDATE": "1"}
    return subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(config), "-d", str(site)],
                          capture_output=True, text=True, env=env, timeout=600, cwd=config.parent)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("mkdocs")
    pytest.importorskip("mkdocs_click")
    pytest.importorskip("mkdocstrings_handlers.python")
    out = tmp_path_factory.mktemp("site")
    done = _build(ROOT / "mkdocs.yml", out)
    assert done.returncode == 0, done.stderr[-4000:]
    return out


def test_the_site_builds_strictly_with_every_page_of_the_nav(site: Path) -> None:
    import yaml

    config = yaml.load((ROOT / "mkdocs.yml").read_text(), Loader=yaml.Loader)  # the file has a python tag

    def pages(nav: list) -> list[str]:
        found = []
        for item in nav:
            value = next(iter(item.values())) if isinstance(item, dict) else item
            found += pages(value) if isinstance(value, list) else [value]
        return found

    listed = pages(config["nav"])
    assert {"getting-started.md", "cli.md", "api.md", "plugin-reference.md", "formats.md", "configuration.md",
            "performance.md", "results.md", "platforms.md"} <= set(listed)
    for page in listed:
        built = site / ("index.html" if page == "index.md" else page.removesuffix(".md") + "/index.html")
        assert built.is_file(), page
    api = (site / "api" / "index.html").read_text()
    for name in ("tlf.engine.api.train", "OnnxClassifier", "RunConfig", "FinishedRun"):
        assert name in api
    assert ":class:" not in api  # the docstrings' Sphinx roles are shown as code
    keys = (site / "configuration" / "index.html").read_text()
    from tlf.config import RunConfig
    assert all(f"<code>{field}</code>" in keys for field in RunConfig.__dataclass_fields__)


def test_the_cli_reference_lists_every_command_and_option(site: Path) -> None:
    from tlf.cli_reference import tlf
    page = html.unescape((site / "cli" / "index.html").read_text())

    def walk(group: click.Command, path: str) -> None:
        assert f"{path}" in page, path
        for param in group.params:
            if isinstance(param, click.Option):
                assert any(opt in page for opt in param.opts), f"{path} {param.opts}"
        for name, command in getattr(group, "commands", {}).items():
            walk(command, f"{path} {name}")

    assert {"train", "evaluate", "export", "predict", "compare", "tune", "data"} <= set(tlf.commands)
    walk(tlf, "tlf")
    assert "Sentinel" not in page  # click's "no default" marker is not shown as a default


def test_a_broken_link_fails_the_build(tmp_path: Path) -> None:
    pytest.importorskip("mkdocs")
    shutil.copytree(ROOT / "docs", tmp_path / "docs")
    shutil.copy(ROOT / "mkdocs.yml", tmp_path / "mkdocs.yml")
    page = tmp_path / "docs" / "getting-started.md"
    page.write_text(page.read_text() + "\nSee [the missing page](no-such-page.md).\n")
    done = _build(tmp_path / "mkdocs.yml", tmp_path / "site")
    assert done.returncode != 0 and "no-such-page.md" in done.stderr


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_pages_name_no_path_of_a_machine(page: Path) -> None:
    text = page.read_text()
    absolute = [m.group() for m in ABSOLUTE_PATH.finditer(text) if not m.group().startswith(SYSTEM_PATHS)]
    assert absolute == [], "write paths relative to the repository, or path/to/DATA"
    assert [m.group() for m in UP_PATH.finditer(text)] == [], "write path/to/DATA, not a folder beside the repository"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_pages_say_session_only_of_onnxruntime_sessions(page: Path) -> None:
    text = page.read_text()
    found = [text[max(0, m.start() - 40):m.end() + 20] for m in SESSION.finditer(text)
             if not INFERENCE.search(text[max(0, m.start() - 20):m.start()])]
    assert found == [], "the docs describe tlf, not how it was made"


def test_the_cli_reference_shows_the_built_in_and_the_plugin_commands(tmp_path: Path) -> None:
    """mkdocs-click lists a group's loaded commands when it has any: with a plugin command
    added to the lazy group, the built-ins would drop out of the reference."""
    pytest.importorskip("mkdocs_click")
    from plugin_helpers import make_dist, run_tlf
    hello = ("import click\nfrom tlf.hookspecs import hookimpl\n@hookimpl\ndef tlf_register_commands(cli):\n"
             "    @cli.command(name='hello')\n    def hello():\n        'Say hello.'\n")
    site = make_dist(tmp_path, "tlf-hello", "1.0", {"tlf_hello": hello}, {"hello": "tlf_hello"})
    code = ("from mkdocs_click._docs import make_command_docs\nfrom tlf.cli_reference import tlf\n"
            "print('\\n'.join(make_command_docs('tlf', tlf, depth=1, style='table', list_subcommands=True)))")
    done = run_tlf(code=code, paths=[site])
    assert done.returncode == 0, done.stderr
    titles = re.findall(r"^#+ ([\w-]+)$", done.stdout, flags=re.MULTILINE)
    assert {"hello", "train", "export", "data", "download"} <= set(titles)
