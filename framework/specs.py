"""Plugin specs: what a plugin registers. Frozen dataclasses, one class per kind.

Every spec has a ``name``, a one-line ``description``, optional ``aliases`` and a
``factory``. A spec whose ``argument`` is set is used as ``name:ARG`` on the command
line (``partial:conv5``, ``folder:PATH``, ``timm:resnet18``).

Factories take the argument (``None`` when absent) first; the objects named here are
defined in the core:

- datasets:      ``factory(argument, request: tlf.data.DatasetRequest) -> tlf.data.Splits``
- backbones:     ``factory(argument, request: tlf.models.BackboneRequest) -> tlf.models.Backbone``
- policies:      ``factory(argument, request: tlf.policies.PolicyRequest) -> tlf.policies.FreezePolicy``
- augmentations: ``factory(argument, request: tlf.augment.AugmentRequest) -> tlf.augment.Augmentation``
- loggers:       ``factory(argument, request: tlf.tracking.LoggerRequest) -> tlf.tracking.Logger``
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar

KINDS = ("datasets", "backbones", "policies", "augmentations", "loggers")


@dataclass(frozen=True)
class Spec:
    """Fields common to every kind of plugin."""

    kind: ClassVar[str] = ""
    name: str
    description: str
    factory: Callable[..., Any] = field(repr=False, compare=False)
    aliases: tuple[str, ...] = ()
    argument: str | None = None  # metavar of ``name:ARG``; None = takes no argument
    argument_required: bool = False
    plugin: str = ""  # the providing distribution, filled in by the registry

    def __post_init__(self) -> None:
        if isinstance(self.aliases, str):
            raise ValueError(f"{self.kind} plugin {self.name!r}: aliases must be a tuple of names, not a string")
        object.__setattr__(self, "aliases", tuple(self.aliases))
        for name in (self.name, *self.aliases):
            if not isinstance(name, str) or not name or ":" in name or any(c.isspace() for c in name):
                raise ValueError(f"invalid {self.kind} plugin name {name!r}: a non-empty word without ':'")
        if not self.description or "\n" in self.description:
            raise ValueError(f"{self.kind} plugin {self.name!r} needs a one-line description")
        if not callable(self.factory):
            raise ValueError(f"{self.kind} plugin {self.name!r}: factory {self.factory!r} is not callable")
        if self.argument_required and self.argument is None:
            raise ValueError(f"{self.kind} plugin {self.name!r}: argument_required needs an argument metavar")

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
    num_classes: int | None = None  # None when it depends on the argument


@dataclass(frozen=True)
class BackboneSpec(Spec):
    """A backbone's size, mean/std and feature dimension are not here: the model's
    :class:`tlf.models.BackboneMeta` states them, once, for the model actually built."""

    kind: ClassVar[str] = "backbones"
    weights: str | None = None  # where pretrained weights come from, in words (meta.weights: what was loaded)


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


SPEC_TYPES: dict[str, type[Spec]] = {
    cls.kind: cls for cls in (DatasetSpec, BackboneSpec, PolicySpec, AugmentationSpec, LoggerSpec)
}
