"""The bridge to the pluggy lifecycle hooks ``tlf_on_run_start``, ``tlf_on_epoch_end`` and
``tlf_on_run_end`` (main process): each plugin is called on its own; one that raises is
reported and the run goes on (:meth:`tlf.pluginmanager.PluginManager.notify`)."""
from __future__ import annotations

from typing import Any

from tlf.engine.callback import Callback
from tlf.pluginmanager import get_plugin_manager


class LifecycleHooks(Callback):
    order = 80
    name = "hooks"

    def before_fit(self, loop: Any) -> None:
        if loop.is_main:
            get_plugin_manager().notify("tlf_on_run_start", run=loop.run)

    def after_epoch(self, loop: Any) -> None:
        if loop.is_main:
            get_plugin_manager().notify("tlf_on_epoch_end", run=loop.run, epoch=loop.epoch + 1, metrics=loop.row)

    def after_fit(self, loop: Any) -> None:
        if loop.is_main:
            get_plugin_manager().notify("tlf_on_run_end", run=loop.run, summary=loop.summary)
