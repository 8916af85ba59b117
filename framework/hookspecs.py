"""Hook specifications: how plugins extend tlf.

A plugin is a module (or object) with functions marked ``@tlf.hookimpl``, exposed
through the ``tlf`` entry-point group::

    # setup.py of a third-party package
    entry_points={"tlf": ["myplugin = my_package.plugin"]}

Registration hooks receive a ``register`` callback; each call registers one spec
(see :mod:`tlf.specs`). Lifecycle hooks are called by the training engine through
:meth:`tlf.pluginmanager.PluginManager.notify`. An implementation may take any subset
of a hook's arguments. A marked function that is not a hook here, or a hook function
left unmarked, makes the plugin fail to load (see docs/plugins.md).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

import pluggy

if TYPE_CHECKING:
    import click

PROJECT = "tlf"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def tlf_register_datasets(register: Callable[..., None]) -> None:
    """Register datasets: ``register(DatasetSpec(...))`` once per dataset."""


@hookspec
def tlf_register_backbones(register: Callable[..., None]) -> None:
    """Register backbones: ``register(BackboneSpec(...))`` once per backbone."""


@hookspec
def tlf_register_policies(register: Callable[..., None]) -> None:
    """Register freeze policies: ``register(PolicySpec(...))`` once per policy."""


@hookspec
def tlf_register_augmentations(register: Callable[..., None]) -> None:
    """Register augmentations: ``register(AugmentationSpec(...))`` once per augmentation."""


@hookspec
def tlf_register_loggers(register: Callable[..., None]) -> None:
    """Register experiment trackers: ``register(LoggerSpec(...))`` once per logger (``--log NAME``)."""


@hookspec
def tlf_register_callbacks(register: Callable[..., None]) -> None:
    """Register training-loop callbacks: ``register(CallbackSpec(...))`` once per callback (``--callback NAME``)."""


@hookspec
def tlf_register_tasks(register: Callable[..., None]) -> None:
    """Register tasks: ``register(TaskSpec(...))`` once per task (``--task NAME``)."""


@hookspec
def tlf_register_commands(cli: click.Group) -> None:
    """Add click commands to the ``tlf`` command group (``cli.add_command(...)``)."""


@hookspec
def tlf_on_run_start(run: Any) -> None:
    """A training run starts; ``run`` has ``config``, ``directory`` and ``model``."""


@hookspec
def tlf_on_epoch_end(run: Any, epoch: int, metrics: dict) -> None:
    """An epoch ended; ``metrics`` is the row written to metrics.jsonl."""


@hookspec
def tlf_on_run_end(run: Any, summary: dict) -> None:
    """A run ended; ``summary`` is the content of summary.json."""
