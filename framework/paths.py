"""Where tlf keeps downloads and caches (``$TLF_HOME``, else the user's cache folder), and
folder names made from user text."""
from __future__ import annotations

import os
import re
from pathlib import Path

from .safe_files import remove_stale_temps

SLUG_LENGTH = 60  # characters kept of a name made from user text (file systems allow 255 bytes per name)
_PRUNED: set[Path] = set()  # cache folders already rid of stale temp files in this process


def tlf_home() -> Path:
    """``$TLF_HOME`` or ``$XDG_CACHE_HOME/tlf`` (default ``~/.cache/tlf``)."""
    if os.environ.get("TLF_HOME"):
        return Path(os.environ["TLF_HOME"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "tlf"


def cache_dir(*parts: str) -> Path:
    """A sub-folder of :func:`tlf_home` (not created), without the temp files killed processes
    left in it (:func:`tlf.safe_files.remove_stale_temps`, once per process and folder: a run asks
    for its cache folders many times)."""
    folder = tlf_home().joinpath(*parts)
    if folder not in _PRUNED and folder.is_dir():
        remove_stale_temps(folder)
        _PRUNED.add(folder)
    return folder


def slug(text: str, empty: str = "x") -> str:
    """``text`` as one folder name: each run of characters other than letters, digits, ``_``,
    ``.`` and ``-`` becomes ``_``, the ends lose ``_.-``, at most SLUG_LENGTH characters are
    kept; ``empty`` when nothing is left (so ``..`` never names a parent folder)."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_.-")[:SLUG_LENGTH] or empty
