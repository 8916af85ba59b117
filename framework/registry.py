"""The registry: every plugin spec by kind and name, with look-ups that explain misses."""
from __future__ import annotations

import dataclasses
import difflib
import warnings
from functools import lru_cache
from typing import Any, Iterator

from .errors import TlfError
from .pluginmanager import PluginManager, PluginLoadWarning, get_plugin_manager
from .specs import KINDS, SPEC_TYPES, Spec

SINGULAR = {"datasets": "dataset", "backbones": "backbone", "policies": "policy", "augmentations": "augmentation"}


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise TlfError(f"unknown plugin kind {kind!r}", hint=f"choose one of: {', '.join(KINDS)}")


def suggest(name: str, candidates: list[str]) -> list[str]:
    """Close matches of ``name`` among ``candidates``, best first."""
    lowered = {c.lower(): c for c in candidates}
    close = difflib.get_close_matches(name.lower(), list(lowered), n=3, cutoff=0.6)
    prefixed = [c for c in lowered if c.startswith(name.lower()) and c not in close]
    return [lowered[c] for c in close + prefixed][:4]


class Registry:
    """Specs of the four kinds, filled from the plugin manager's registration hooks."""

    def __init__(self, pm: PluginManager) -> None:
        self.pm = pm
        self._specs: dict[str, dict[str, Spec]] = {kind: {} for kind in KINDS}
        self._aliases: dict[str, dict[str, str]] = {kind: {} for kind in KINDS}
        for kind in KINDS:
            self._collect(kind)

    def _collect(self, kind: str) -> None:
        caller = getattr(self.pm.hook, f"tlf_register_{kind}")
        for impl in reversed(caller.get_hookimpls()):  # registration order
            info = self.pm.infos.get(impl.plugin_name)
            package = info.distribution if info else impl.plugin_name

            def register(spec: Spec, _package: str = package) -> None:
                self._add(kind, spec, _package)

            try:
                impl.function(register=register)
            except TlfError:
                raise
            except Exception as exc:
                warnings.warn(f"plugin {impl.plugin_name!r} from package {package} failed to register "
                              f"{kind} and is skipped: {type(exc).__name__}: {exc}", PluginLoadWarning, stacklevel=2)

    def _add(self, kind: str, spec: Spec, package: str) -> None:
        expected = SPEC_TYPES[kind]
        if not isinstance(spec, expected):
            raise TypeError(f"{package} registered {type(spec).__name__} as {kind}; expected {expected.__name__}")
        spec = dataclasses.replace(spec, plugin=package)
        for key in (spec.name, *spec.aliases):
            owner = self._specs[kind].get(key) or self._specs[kind].get(self._aliases[kind].get(key, ""))
            if owner is not None:
                raise TlfError(
                    f"{SINGULAR[kind]} name {key!r} is registered twice: by package {owner.plugin} "
                    f"({owner.name}) and by package {package} ({spec.name})",
                    hint=f"uninstall one of them, or list the packages to load in TLF_LOAD_PLUGINS")
        self._specs[kind][spec.name] = spec
        for alias in spec.aliases:
            self._aliases[kind][alias] = spec.name

    def specs(self, kind: str | None = None) -> Iterator[Spec]:
        """All specs (of one kind), sorted by kind then name."""
        for k in (kind,) if kind else KINDS:
            _check_kind(k)
            yield from sorted(self._specs[k].values(), key=lambda s: s.name)

    def names(self, kind: str) -> list[str]:
        _check_kind(kind)
        return sorted([*self._specs[kind], *self._aliases[kind]])

    def resolve(self, kind: str, text: str) -> tuple[Spec, str | None]:
        """``"partial:conv5"`` -> (the ``partial`` spec, ``"conv5"``); errors name close matches."""
        _check_kind(kind)
        name, sep, argument = text.partition(":")
        name = name.strip()
        key = self._aliases[kind].get(name, name)
        spec = self._specs[kind].get(key)
        if spec is None:
            close = suggest(name, self.names(kind))
            did_you_mean = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
            raise TlfError(f"unknown {SINGULAR[kind]} {name!r}{did_you_mean}",
                           hint=f"'tlf plugins --kind {kind}' lists them all")
        if not sep:
            argument = None
        if spec.argument is None and argument is not None:
            raise TlfError(f"{SINGULAR[kind]} {spec.name!r} takes no argument, got {text!r}",
                           hint=f"write it as {spec.name!r}")
        if spec.argument_required and not argument:
            raise TlfError(f"{SINGULAR[kind]} {spec.name!r} needs an argument",
                           hint=f"write it as {spec.usage!r}")
        return spec, argument

    def create(self, kind: str, text: str, *args: Any, **kwargs: Any) -> Any:
        """Resolve ``text`` and call the spec's factory."""
        spec, argument = self.resolve(kind, text)
        return spec.factory(argument, *args, **kwargs)


@lru_cache(maxsize=1)
def get_registry() -> Registry:
    """The process-wide registry over every loaded plugin."""
    return Registry(get_plugin_manager())


def resolve(kind: str, text: str) -> tuple[Spec, str | None]:
    """Shortcut for ``get_registry().resolve(kind, text)``."""
    return get_registry().resolve(kind, text)
