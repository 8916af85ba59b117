"""Plugin specs: what a plugin registers. Frozen dataclasses, one class per kind.

Every spec has a ``name``, a one-line ``description``, optional ``aliases`` and a
``factory``. A spec whose ``argument`` is set is used as ``name:ARG`` on the command
line (``partial:conv5``, ``folder:PATH``, ``timm:resnet18``).

A ``factory`` is a callable or a ``"module:attr"`` reference imported when the plugin is
first built (so registering stays cheap). It is called as ``factory(argument, request)``:
the argument is ``None`` when absent, else its text parsed by the spec's ``parse`` (a
callable or ``"module:attr"``, e.g. :func:`tlf.arguments.integer`; none = the text itself).
The objects named here are defined in the core:

- datasets:      ``factory(argument, request: tlf.data.DatasetRequest) -> tlf.data.Splits``
- backbones:     ``factory(argument, request: tlf.models.BackboneRequest) -> tlf.models.Backbone``
- policies:      ``factory(argument, request: tlf.policies.PolicyRequest) -> tlf.policies.FreezePolicy``
- augmentations: ``factory(argument, request: tlf.augment.AugmentRequest) -> tlf.augment.Augmentation``
- loggers:       ``factory(argument, request: tlf.tracking.LoggerRequest) -> tlf.tracking.Logger``
- callbacks:     ``factory(argument, request: tlf.engine.callback.CallbackRequest) -> tlf.engine.callback.Callback | None``
- tasks:         ``factory(argument, request: tlf.task.TaskRequest) -> tlf.task.Task``
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from importlib import import_module
from typing import Any, Callable, ClassVar, Union

from .errors import TlfError

CONTRACTS = ("pyramid", "columnar")  # a backbone's stages: conv1..conv5, or embed + block1..blockN
KINDS = ("datasets", "backbones", "policies", "augmentations", "loggers", "callbacks", "tasks")
SINGULAR = {"datasets": "dataset", "backbones": "backbone", "policies": "policy", "augmentations": "augmentation",
            "loggers": "logger", "callbacks": "callback", "tasks": "task"}
REFERENCE = re.compile(r"[A-Za-z_][\w.]*:[A-Za-z_]\w*")  # "module:attr"
Callee = Union[Callable[..., Any], str]  # a callable, or "module:attr" naming one


def load(callee: Callee) -> Callable[..., Any]:
    """``callee`` itself, or the attribute its ``"module:attr"`` names (imported now)."""
    if not isinstance(callee, str):
        return callee
    module, _, attr = callee.partition(":")
    return getattr(import_module(module), attr)


@dataclass(frozen=True)
class Spec:
    """Fields common to every kind of plugin."""

    kind: ClassVar[str] = ""
    optional_callees: ClassVar[tuple[str, ...]] = ("parse",)  # fields holding None or a callable / "module:attr"
    name: str
    description: str
    factory: Callee = field(repr=False, compare=False)
    aliases: tuple[str, ...] = ()
    argument: str | None = None  # metavar of ``name:ARG``; None = takes no argument
    argument_required: bool = False
    plugin: str = ""  # the providing distribution, filled in by the registry
    parse: Callee | None = field(default=None, repr=False, compare=False)  # ARG's text -> the factory's argument

    def __post_init__(self) -> None:
        if isinstance(self.aliases, str):
            raise ValueError(f"{self.kind} plugin {self.name!r}: aliases must be a tuple of names, not a string")
        object.__setattr__(self, "aliases", tuple(self.aliases))
        for name in (self.name, *self.aliases):
            if not isinstance(name, str) or not name or ":" in name or any(c.isspace() for c in name):
                raise ValueError(f"invalid {self.kind} plugin name {name!r}: a non-empty word without ':'")
        if not self.description or "\n" in self.description:
            raise ValueError(f"{self.kind} plugin {self.name!r} needs a one-line description")
        for what in ("factory", *self.optional_callees):
            value = getattr(self, what)
            if not (callable(value) or (isinstance(value, str) and REFERENCE.fullmatch(value))
                    or (what != "factory" and value is None)):
                raise ValueError(f"{self.kind} plugin {self.name!r}: {what} {value!r} is neither callable "
                                 f"nor a 'module:attr' reference")
        if self.argument_required and self.argument is None:
            raise ValueError(f"{self.kind} plugin {self.name!r}: argument_required needs an argument metavar")

    def argument_value(self, argument: str | None) -> Any:
        """What the factory is given for ``argument`` (the text after ``name:``): parsed by
        ``parse``; a bad one is a one-line :class:`TlfError` naming the plugin."""
        if argument is None or self.parse is None:
            return argument
        try:
            return load(self.parse)(argument)
        except ValueError as exc:
            raise TlfError(f"{SINGULAR[self.kind]} {self.name!r}: bad argument {argument!r}: {exc}",
                           hint=f"write it as {self.usage!r}") from None

    def build(self, argument: str | None, request: Any) -> Any:
        """``factory(parsed argument, request)``."""
        return load(self.factory)(self.argument_value(argument), request)

    @property
    def usage(self) -> str:
        """How the spec is written on the command line."""
        if self.argument is None:
            return self.name
        arg = f":{self.argument}" if self.argument_required else f"[:{self.argument}]"
        return self.name + arg


@dataclass(frozen=True)
class DatasetSpec(Spec):
    kind: ClassVar[str] = "datasets"
    downloads: bool = False  # fetches files from the network when not cached
    reads_folder: bool = False  # its argument is a folder: ``--dataset PATH`` of an existing folder means this one
    num_classes: int | None = None  # None when it depends on the argument


@dataclass(frozen=True)
class BackboneSpec(Spec):
    """A backbone's preprocessing facts (image size, mean/std, interpolation, crop) are known
    before it is built when the spec states ``facts``: a callable or ``"module:attr"`` called
    with the parsed argument (as the factory is) that returns a
    :class:`tlf.preprocessing.BackboneFacts`; the built model's :class:`tlf.models.BackboneMeta`
    must take them from the same source. Without ``facts`` (allowed for third-party plugins),
    a run takes them from the built model's meta. The feature dimension and the weights loaded
    are only known once built: only the meta says them."""

    kind: ClassVar[str] = "backbones"
    optional_callees: ClassVar[tuple[str, ...]] = ("parse", "facts")
    weights: str | None = None  # where pretrained weights come from, in words (meta.weights: what was loaded)
    # the stage contracts (CONTRACTS) its backbones follow; a built backbone's stage names say which one it is
    contracts: tuple[str, ...] = ("pyramid",)
    facts: Callee | None = field(default=None, repr=False, compare=False)  # parsed argument -> BackboneFacts

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "contracts", tuple(self.contracts))
        if not self.contracts or set(self.contracts) - set(CONTRACTS):
            raise ValueError(f"backbone plugin {self.name!r}: contracts {self.contracts!r} must name "
                             f"some of {CONTRACTS}")

    def preprocessing_facts(self, argument: str | None) -> Any:
        """The :class:`tlf.preprocessing.BackboneFacts` of ``name:argument``, without building the
        model; None when the plugin states none (its built meta says them)."""
        return None if self.facts is None else load(self.facts)(self.argument_value(argument))


@dataclass(frozen=True)
class PolicySpec(Spec):
    kind: ClassVar[str] = "policies"


@dataclass(frozen=True)
class AugmentationSpec(Spec):
    kind: ClassVar[str] = "augmentations"
    batch_level: bool = False  # applied to whole batches (mixup, cutmix)


@dataclass(frozen=True)
class LoggerSpec(Spec):
    kind: ClassVar[str] = "loggers"
    modules: tuple[str, ...] = ()  # Python modules its factory imports (checked before a run starts)
    install: str = ""  # how to install them, e.g. "'tlf[tensorboard]'"


@dataclass(frozen=True)
class CallbackSpec(Spec):
    """A training-loop callback (``--callback NAME[:ARG]``, :class:`tlf.engine.callback.Callback`)."""

    kind: ClassVar[str] = "callbacks"
    always: bool = False  # built for every run (its factory returns None where the plan does not need it)


@dataclass(frozen=True)
class TaskSpec(Spec):
    """What a run predicts (``--task NAME``). Its loss, metrics and activation are stated once,
    by the :class:`tlf.task.Task` the factory builds."""

    kind: ClassVar[str] = "tasks"


SPEC_TYPES: dict[str, type[Spec]] = {
    cls.kind: cls for cls in (DatasetSpec, BackboneSpec, PolicySpec, AugmentationSpec, LoggerSpec, CallbackSpec,
                              TaskSpec)
}
