"""``--lr auto``'s files: the lr range test itself is the last step of the plan's resolution
(:meth:`tlf.plan.Resolution.with_lr`, run by the trainer on the run's prepared batches before
``before_fit``; summary.json's ``defaults_chosen`` says why). This callback writes what it found:
config.yaml again with the chosen lr, the plot as lr_find.png, and summary.json's ``lr_find``."""
from __future__ import annotations

from typing import Any

from tlf.engine.callback import Callback


class LrFinder(Callback):
    order = 5  # before the loggers are told the run's settings
    name = "lr-finder"

    def before_fit(self, loop: Any) -> None:
        if loop.lr_finding is None or not loop.is_main or loop.run_dir is None:  # resumed: config.yaml holds the lr
            return
        from tlf.plots.training import plot_lr_find
        loop.run_dir.write_yaml("config.yaml", loop.config.to_dict())
        plot_lr_find(loop.lr_finding, loop.run_dir.path / "lr_find.png")

    def summary(self, loop: Any) -> dict[str, Any]:
        return {"lr_find": loop.lr_finding.to_dict()} if loop.lr_finding is not None else {}
