"""Where tlf keeps downloads and caches: ``$TLF_HOME``, else the user's cache folder."""
from __future__ import annotations

import os
from pathlib import Path

from .safe_files import remove_stale_temps


def tlf_home() -> Path:
    """``$TLF_HOME`` or ``$XDG_CACHE_HOME/tlf`` (default ``~/.cache/tlf``)."""
    if os.environ.get("TLF_HOME"):
        return Path(os.environ["TLF_HOME"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "tlf"


def cache_dir(*parts: str) -> Path:
    """A sub-folder of :func:`tlf_home` (not created), without the temp files killed processes
    left in it (:func:`tlf.safe_files.remove_stale_temps`)."""
    folder = tlf_home().joinpath(*parts)
    remove_stale_temps(folder)
    return folder
