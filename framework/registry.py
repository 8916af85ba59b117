"""The registry: every plugin spec by kind and name, with look-ups that explain misses."""
from __future__ import annotations

import difflib
from dataclasses import replace
from typing import Any, Iterator

from .errors import TlfError
from .pluginmanager import LOAD_ENV, PluginManager, get_plugin_manager
from .specs import KINDS, SINGULAR, SPEC_TYPES, Spec


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
    """Specs of the four kinds, filled from the plugin manager's registration hooks.

    A plugin whose registration hook raises is reported and none of its specs of that
    kind are kept; a name registered twice is a :class:`TlfError` naming both packages.
    """

    def __init__(self, pm: PluginManager) -> None:
        self.pm = pm
        while True:  # a plugin failing in one hook is unregistered: collect again without any of its specs
            self.generation = pm.generation
            self._specs: dict[str, dict[str, Spec]] = {kind: {} for kind in KINDS}
            self._aliases: dict[str, dict[str, str]] = {kind: {} for kind in KINDS}
            for kind in KINDS:
                self._collect(kind)
            if pm.generation == self.generation:
                break

    def _collect(self, kind: str) -> None:
        expected = SPEC_TYPES[kind]
        for impl in self.pm.impls(f"tlf_register_{kind}"):
            package = self.pm.package_of(impl.plugin_name)
            specs: list[Spec] = []

            def register(spec: Spec) -> None:
                if not isinstance(spec, expected):
                    raise TypeError(f"registered {type(spec).__name__} as {kind}; expected {expected.__name__}")
                specs.append(spec)

            if self.pm.call_impl(impl, register=register):
                for spec in specs:
                    self._add(kind, replace(spec, plugin=package))

    def _add(self, kind: str, spec: Spec) -> None:
        for key in (spec.name, *spec.aliases):
            owner = self._specs[kind].get(self._aliases[kind].get(key, key))
            if owner is not None:
                raise TlfError(
                    f"{SINGULAR[kind]} name {key!r} is registered twice: by package {owner.plugin} "
                    f"({owner.name}) and by package {spec.plugin} ({spec.name})",
                    hint=f"uninstall one of them, or list the packages to load in {LOAD_ENV}")
        self._specs[kind][spec.name] = spec
        for alias in spec.aliases:
            self._aliases[kind][alias] = spec.name

    def specs(self, kind: str | None = None) -> Iterator[Spec]:
        """All specs (of one kind), sorted by kind then name."""
        for k in (kind,) if kind else KINDS:
            _check_kind(k)
            yield from sorted(self._specs[k].values(), key=lambda s: s.name)

    def names(self, kind: str) -> list[str]:
        """Every name and alias of one kind, sorted."""
        _check_kind(kind)
        return sorted([*self._specs[kind], *self._aliases[kind]])

    def resolve(self, kind: str, text: str) -> tuple[Spec, str | None]:
        """``"partial:conv5"`` -> (the ``partial`` spec, ``"conv5"``); errors name close matches."""
        name, sep, argument = text.partition(":")
        spec = self.find(name.strip(), kind)[0]
        if not sep:
            argument = None
        if spec.argument is None and argument is not None:
            raise TlfError(f"{SINGULAR[kind]} {spec.name!r} takes no argument, got {text!r}",
                           hint=f"write it as {spec.name!r}")
        if spec.argument_required and not argument:
            raise TlfError(f"{SINGULAR[kind]} {spec.name!r} needs an argument",
                           hint=f"write it as {spec.usage!r}")
        return spec, argument

    def _list_hint(self, kind: str | None) -> str:
        """Where to look for the names, and which plugins failed (one may have provided it)."""
        hint = f"'tlf plugins --kind {kind}' lists them all" if kind else "'tlf plugins' lists them all"
        failed = [info.name for info in self.pm.failures()]
        return hint + (f"; these plugins failed to load: {', '.join(failed)}" if failed else "")

    def find(self, name: str, kind: str | None = None) -> list[Spec]:
        """The specs called ``name`` (or with that alias), of one kind or of every kind;
        an unknown name is a :class:`TlfError` with the close matches of every kind."""
        kinds = (kind,) if kind else KINDS
        found = []
        for k in kinds:
            _check_kind(k)
            spec = self._specs[k].get(self._aliases[k].get(name, name))
            if spec is not None:
                found.append(spec)
        if not found:
            close = suggest(name, sorted({n for k in kinds for n in self.names(k)}))
            did_you_mean = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
            what = SINGULAR[kind] if kind else "plugin"
            raise TlfError(f"unknown {what} {name!r}{did_you_mean}", hint=self._list_hint(kind))
        return found

    def create(self, kind: str, text: str, *args: Any, **kwargs: Any) -> Any:
        """Resolve ``text`` and build the spec (:meth:`Spec.build`); what it returns must be of the kind's type."""
        spec, argument = self.resolve(kind, text)
        return check_product(kind, spec, spec.build(argument, *args, **kwargs))


# what each kind's factory must return, as "module:attribute" (imported only to check)
PRODUCTS = {"datasets": "tlf.data.dataset:Splits", "backbones": "tlf.models.backbone:Backbone",
            "policies": "tlf.policies:FreezePolicy", "augmentations": "tlf.augment.pipeline:Augmentation",
            "tasks": "tlf.task:Task"}


def check_product(kind: str, spec: Spec, product: Any) -> Any:
    """``product`` if it is what a ``kind`` factory must return, else a :class:`TlfError` naming the
    plugin and its package (a plugin's bug would otherwise surface as an AttributeError later)."""
    from importlib import import_module
    module, attr = PRODUCTS[kind].split(":")
    expected = getattr(import_module(module), attr)
    if not isinstance(product, expected):
        raise TlfError(f"{SINGULAR[kind]} plugin {spec.name!r} from package {spec.plugin} returned "
                       f"{type(product).__name__}, expected {expected.__module__}.{expected.__name__}",
                       hint=f"a bug in package {spec.plugin}: report it to its authors, or uninstall it")
    return product


_current: Registry | None = None


def get_registry() -> Registry:
    """The process-wide registry over every loaded plugin; rebuilt when plugins change."""
    global _current
    pm = get_plugin_manager()
    if _current is None or _current.pm is not pm or _current.generation != pm.generation:
        _current = Registry(pm)
    return _current
