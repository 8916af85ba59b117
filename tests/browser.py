"""Headless Chromium for the report tests: the rendered DOM, a screenshot and the console.

Debian's ``chromium`` (``.ci/run`` installs it when missing); tests skip, saying why, only
where it is not installed.
"""
from __future__ import annotations

import html.parser
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--enable-logging=stderr", "--v=0"]


def chromium() -> str:
    """The chromium executable, or skip the test with the reason."""
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    pytest.skip("chromium is not installed (apt-get install -y chromium; .ci/run does it)")


@dataclass
class Page:
    dom: str  # the DOM after rendering (--dump-dom)
    console: list[str]  # console messages: script errors, blocked requests (CSP)

    @property
    def attributes(self) -> list[tuple[str, str, str]]:
        """(tag, attribute, value) of every element's attributes, as the HTML parser reads the DOM."""
        found: list[tuple[str, str, str]] = []

        class Collect(html.parser.HTMLParser):
            def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
                found.extend((tag, name, value or "") for name, value in attrs)

        Collect().feed(self.dom)
        return found


def _run(page: Path, *args: str) -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory() as profile:
        return subprocess.run([chromium(), *FLAGS, f"--user-data-dir={profile}", *args, page.resolve().as_uri()],
                              capture_output=True, text=True, timeout=120, check=True)


def render(page: Path) -> Page:
    done = _run(page, "--dump-dom")
    return Page(done.stdout, [line for line in done.stderr.splitlines() if ":CONSOLE" in line])


def screenshot(page: Path, out: Path, width: int = 1200, height: int = 2400) -> Path:
    _run(page, f"--screenshot={out}", f"--window-size={width},{height}")
    return out
