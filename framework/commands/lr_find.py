"""``tlf lr-find``: the learning-rate range test for a run's settings, without training it."""
from __future__ import annotations

import json

import click

from .options import settings
from .train import TRAIN_SETTINGS


@click.command("lr-find")
@settings(*(name for name in TRAIN_SETTINGS if name not in ("lr", "loggers", "callbacks")))  # the test chooses the lr
@click.option("--config", "config_file", type=click.Path(dir_okay=False), help="YAML/JSON settings; flags override it.")
@click.option("--plot", type=click.Path(dir_okay=False), default="lr_find.png", show_default=True,
              help="Where to save the loss-against-lr plot.")
@click.option("--steps", type=click.IntRange(min=10), default=200, show_default=True,
              help="Most optimizer steps of the test (it stops earlier when the loss diverges).")
@click.option("--quiet", "-q", is_flag=True, help="No progress output; only the result.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as one JSON object.")
def lr_find(config_file: str | None, plot: str, steps: int, quiet: bool, as_json: bool, **flags) -> None:
    """Suggest a learning rate: the lr grows exponentially from 1e-7 to 10 over the run's own
    training batches (feature cache included), the loss is smoothed, the test stops when it
    diverges; the suggestion is the steepest descent before the minimum. Model and optimizer
    are restored afterwards; 'tlf train --lr auto' does the same, then trains.

    \b
    tlf lr-find --dataset flowers --policy transfer
    tlf lr-find --dataset flowers --policy partial:conv5 --plot partial.png
    """
    from ..engine.api import lr_find as run_finder
    finding = run_finder(config_file, plot=plot, steps=steps, quiet=quiet, **flags)
    if as_json:
        click.echo(json.dumps({**finding.to_dict(), "plot": plot}))
        return
    click.echo(f"suggested lr {finding.suggestion:.2e} ({finding.rule}; {len(finding.lrs)} steps from "
               f"{finding.lrs[0]:.0e} to {finding.lrs[-1]:.1e})")
    click.echo(f"plot: {plot}")
