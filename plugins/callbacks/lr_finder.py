"""``--lr auto``: the lr range test (:func:`tlf.engine.lr_find.find_lr`) runs on the run's own
batches before the first epoch; its suggestion (rank 0's, on every rank) becomes the run's lr
and its config.yaml's (summary.json's ``defaults_chosen`` says why), and the plot is saved
as lr_find.png."""
from __future__ import annotations

import dataclasses
from typing import Any

from tlf.adaptive_defaults import Choice
from tlf.engine import distributed as ddp
from tlf.engine.callback import Callback
from tlf.engine.lr_find import LrFinding, find_lr


class LrFinder(Callback):
    order = 5  # before the schedule is built and the loggers are told the run's settings
    name = "lr-finder"

    def __init__(self) -> None:
        self.finding: LrFinding | None = None

    def before_fit(self, loop: Any) -> None:
        if loop.config.lr != "auto":  # a resumed run: its config.yaml holds the chosen lr
            return
        finding = find_lr(loop)
        finding.suggestion = ddp.broadcast_object(finding.suggestion, loop.world)
        self.finding = finding
        loop.base_lr = finding.suggestion
        loop.config = loop.run.config = dataclasses.replace(loop.config, lr=finding.suggestion)
        loop.optimizer = loop.build_optimizer(finding.suggestion)
        why = f"--lr auto: the lr range test's suggestion ({finding.rule})"
        loop.defaults_chosen.append(Choice("lr", finding.suggestion, float(loop.policy.defaults["lr"]), why).to_dict())
        loop.report.info(f"lr auto: {finding.suggestion:.2e} ({finding.rule}, {len(finding.lrs)} steps)")
        if loop.is_main and loop.run_dir is not None:
            from tlf.plots.training import plot_lr_find
            loop.run_dir.write_yaml("config.yaml", loop.config.to_dict())
            plot_lr_find(finding, loop.run_dir.path / "lr_find.png")

    def summary(self, loop: Any) -> dict[str, Any]:
        return {"lr_find": self.finding.to_dict()} if self.finding is not None else {}
