"""Loading plugins: built-ins and third-party packages alike, through the ``tlf``
entry-point group.

``TLF_LOAD_PLUGINS`` restricts which external distributions load: a comma-separated
list of distribution names (set but empty: none). tlf's own built-ins always load.

A plugin that fails (its module raises on import, it implements a hook that does not
exist, its registration hook or a lifecycle hook raises) is reported with
:func:`tlf.messages.warn` naming the plugin and its package, recorded in
:attr:`PluginManager.infos`, and skipped: it is unregistered, so none of its hooks is called
again and the registry, rebuilt, holds none of its specs or commands. "Raises" means any
``BaseException`` but ``KeyboardInterrupt``: a plugin's ``sys.exit()`` must not end tlf.
Lifecycle hooks get their own copy of plain-data arguments (the metrics row, the summary),
so a plugin cannot rewrite what the engine records.
"""
from __future__ import annotations

import copy
import difflib
import os
import re
from dataclasses import dataclass, replace
from functools import lru_cache
from importlib.metadata import entry_points
from typing import Any

import pluggy

from . import hookspecs, messages

ENTRY_POINT_GROUP = "tlf"
LOAD_ENV = "TLF_LOAD_PLUGINS"
BUILTIN_DIST = "tlf"
HOOK_NAMES = tuple(sorted(name for name in vars(hookspecs) if name.startswith("tlf_")))


def plugin_failure(exc: BaseException) -> bool:
    """Whether ``exc``, raised by plugin code, is the plugin's failure (to report and skip) rather
    than the user's interrupt: everything but ``KeyboardInterrupt``, ``SystemExit`` included."""
    return not isinstance(exc, KeyboardInterrupt)


@dataclass(frozen=True)
class PluginInfo:
    """One loaded (or failed) plugin module."""

    name: str  # registration name: "<distribution>.<entry point>"
    distribution: str
    version: str
    error: str | None = None  # why it failed, when it did


def canonical_dist_name(dist_name: str) -> str:
    """A distribution name as pip compares it (PEP 503): ``Tlf_Plugin.X`` -> ``tlf-plugin-x``."""
    return re.sub(r"[-_.]+", "-", dist_name).lower()


def requested_distributions() -> set[str] | None:
    """The external distributions ``TLF_LOAD_PLUGINS`` allows (normalized); None = all."""
    wanted = os.environ.get(LOAD_ENV)
    if wanted is None:
        return None
    return {canonical_dist_name(w.strip()) for w in wanted.split(",") if w.strip()}


class PluginManager(pluggy.PluginManager):
    """pluggy's manager plus a record of which distribution provided each plugin.

    ``generation`` changes whenever a plugin is registered or unregistered, so that
    derived state (the registry) knows when to rebuild.
    """

    def __init__(self) -> None:
        super().__init__(hookspecs.PROJECT)
        self.add_hookspecs(hookspecs)
        self.infos: dict[str, PluginInfo] = {}
        self.generation = 0

    def register(self, plugin: Any, name: str | None = None) -> str | None:
        """Register ``plugin`` after checking its hooks against :mod:`tlf.hookspecs`."""
        self._check_hooks(plugin)
        registered = super().register(plugin, name=name)
        self.generation += 1
        try:
            self.check_pending()
        except pluggy.PluginValidationError:
            self.unregister(plugin)
            raise
        return registered

    def unregister(self, plugin: Any = None, name: str | None = None) -> Any:
        """Remove a plugin (by object or name)."""
        removed = super().unregister(plugin, name=name)
        self.generation += 1
        return removed

    def _check_hooks(self, plugin: Any) -> None:
        """Misspelled hooks and hooks without ``@hookimpl`` would be silently ignored: reject them."""
        for attr in dir(plugin):
            if not attr.startswith("tlf_"):
                continue
            opts = self.parse_hookimpl_opts(plugin, attr)
            hook = (opts or {}).get("specname") or attr
            if opts is not None and hook not in HOOK_NAMES:
                close = difflib.get_close_matches(hook, HOOK_NAMES, n=1)
                did_you_mean = f"; did you mean {close[0]!r}?" if close else ""
                raise pluggy.PluginValidationError(plugin, f"unknown hook {hook!r}{did_you_mean}")
            if opts is None and attr in HOOK_NAMES and callable(getattr(plugin, attr)):
                raise pluggy.PluginValidationError(
                    plugin, f"{attr} is not marked with @hookimpl (from tlf.hookspecs import hookimpl)")

    def load_entry_points(self) -> None:
        """Register every allowed ``tlf`` entry point; a broken one is reported and skipped."""
        allowed = requested_distributions()
        found: set[str] = set()
        eps = sorted(entry_points(group=ENTRY_POINT_GROUP),
                     key=lambda e: (e.dist.name != BUILTIN_DIST, canonical_dist_name(e.dist.name), e.name))
        for ep in eps:
            dist, version = ep.dist.name, ep.dist.version
            found.add(canonical_dist_name(dist))
            if dist != BUILTIN_DIST and allowed is not None and canonical_dist_name(dist) not in allowed:
                continue
            name = f"{dist}.{ep.name}"
            if name in self.infos:
                continue  # loaded by an earlier call
            self.infos[name] = PluginInfo(name, dist, version)
            try:
                self.register(ep.load(), name=name)
            except BaseException as exc:  # a plugin's bug (even sys.exit at import) must not break tlf
                if not plugin_failure(exc):
                    raise
                self.fail(name, f"failed to load: {type(exc).__name__}: {exc}")
        for missing in sorted((allowed or set()) - found):
            messages.warn(f"{LOAD_ENV} names {missing!r}, which provides no tlf plugins (is it installed?)")

    def register_object(self, plugin: object, name: str, distribution: str = "__main__", version: str = "") -> None:
        """Register a plugin object directly (tests, notebooks, scripts); errors propagate."""
        self.register(plugin, name=name)
        self.infos[name] = PluginInfo(name, distribution, version)

    def fail(self, name: str, error: str) -> None:
        """Record and report that plugin ``name`` failed (``error`` says how), and unregister it."""
        info = self.infos.get(name) or PluginInfo(name, name, "")
        self.infos[name] = replace(info, error=error)
        if self.get_plugin(name) is not None:
            self.unregister(name=name)
        label = f"{info.distribution} {info.version}".strip()
        messages.warn(f"plugin {name!r} from package {label} {error}; skipped")

    def package_of(self, plugin_name: str) -> str:
        """The distribution that provided plugin ``plugin_name``."""
        info = self.infos.get(plugin_name)
        return info.distribution if info else plugin_name

    def impls(self, hook: str) -> list[pluggy.HookImpl]:
        """The implementations of ``hook``, in registration order (built-ins first)."""
        return getattr(self.hook, hook).get_hookimpls()

    def call_impl(self, impl: pluggy.HookImpl, **kwargs: Any) -> bool:
        """Call one implementation with the arguments it takes; if it raises (anything but
        KeyboardInterrupt), report the plugin as failed, unregister it and return False."""
        try:
            impl.function(**{name: kwargs[name] for name in impl.argnames})
        except BaseException as exc:  # a plugin's bug (even sys.exit) must not break tlf
            if not plugin_failure(exc):
                raise
            self.fail(impl.plugin_name, f"failed in {impl.function.__name__}: {type(exc).__name__}: {exc}")
            return False
        return True

    def notify(self, hook: str, **kwargs: Any) -> None:
        """Call every implementation of a lifecycle hook (``tlf_on_epoch_end``, ...), each with its
        own deep copy of the dict/list arguments; one that raises is reported and skipped, and the
        run goes on."""
        for impl in self.impls(hook):
            self.call_impl(impl, **{k: copy.deepcopy(v) if isinstance(v, (dict, list)) else v
                                    for k, v in kwargs.items()})

    def failures(self) -> list[PluginInfo]:
        """Plugins that failed to load or to register."""
        return [info for info in self.infos.values() if info.error]


@lru_cache(maxsize=1)
def get_plugin_manager() -> PluginManager:
    """The process-wide plugin manager, with every entry point loaded.

    ``get_plugin_manager.cache_clear()`` starts over (tests)."""
    pm = PluginManager()
    pm.load_entry_points()
    return pm
