"""Loading plugins: built-ins and third-party packages alike, through the ``tlf``
entry-point group.

``TLF_LOAD_PLUGINS`` restricts which external distributions load: a comma-separated
list of distribution names (empty: none). tlf's own built-ins always load.
"""
from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from functools import lru_cache
from importlib.metadata import entry_points

import pluggy

from . import hookspecs

ENTRY_POINT_GROUP = "tlf"
LOAD_ENV = "TLF_LOAD_PLUGINS"
BUILTIN_DIST = "tlf"


class PluginLoadWarning(UserWarning):
    """A plugin package failed to load and was skipped."""


@dataclass(frozen=True)
class PluginInfo:
    """One loaded (or failed) plugin module."""

    name: str  # registration name: "<distribution>.<entry point>"
    distribution: str
    version: str
    error: str | None = None


def _allowed(dist_name: str) -> bool:
    if dist_name == BUILTIN_DIST:
        return True
    wanted = os.environ.get(LOAD_ENV)
    if wanted is None:
        return True
    return dist_name.lower() in {w.strip().lower() for w in wanted.split(",") if w.strip()}


class PluginManager(pluggy.PluginManager):
    """pluggy's manager plus a record of which distribution provided each plugin."""

    def __init__(self) -> None:
        super().__init__(hookspecs.PROJECT)
        self.add_hookspecs(hookspecs)
        self.infos: dict[str, PluginInfo] = {}

    def load_entry_points(self) -> None:
        """Register every ``tlf`` entry point; a broken one is reported and skipped."""
        for ep in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: (e.dist.name != BUILTIN_DIST, e.dist.name, e.name)):
            dist, version = ep.dist.name, ep.dist.version
            if not _allowed(dist):
                continue
            name = f"{dist}.{ep.name}"
            if self.has_plugin(name):
                continue  # the same distribution seen twice on sys.path
            try:
                self.register(ep.load(), name=name)
                self.check_pending()
            except Exception as exc:  # a plugin's bug must not break tlf
                if self.has_plugin(name):
                    self.unregister(name=name)
                error = f"{type(exc).__name__}: {exc}"
                warnings.warn(f"plugin {name!r} from package {dist} {version} failed to load and is skipped: {error}",
                              PluginLoadWarning, stacklevel=2)
                self.infos[name] = PluginInfo(name, dist, version, error)
                continue
            self.infos[name] = PluginInfo(name, dist, version)

    def register_object(self, plugin: object, name: str, distribution: str = "__main__", version: str = "") -> None:
        """Register a plugin object directly (tests, notebooks, scripts)."""
        self.register(plugin, name=name)
        self.check_pending()
        self.infos[name] = PluginInfo(name, distribution, version)


@lru_cache(maxsize=1)
def get_plugin_manager() -> PluginManager:
    """The process-wide plugin manager, with every entry point loaded."""
    pm = PluginManager()
    pm.load_entry_points()
    return pm
