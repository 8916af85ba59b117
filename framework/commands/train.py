"""``tlf train``: one training run, from flags and/or a config file."""
from __future__ import annotations

import json
from pathlib import Path

import click

from ..config import RunConfig
from .options import settings


def _help_defaults() -> str:
    d = RunConfig()
    return (f"Defaults: --dataset {d.dataset} --backbone {d.backbone} --policy {d.policy}; --augment, --epochs and "
            f"--lr come from the policy (transfer: none, 10 epochs, lr 1e-3; others: basic, label sets flip); on a small dataset "
            f"the epochs are raised to reach 300 optimizer steps (multi-label: 1800; at most 4x).")


TRAIN_SETTINGS = ("dataset", "backbone", "policy", "augment", "epochs", "batch_size", "image_size", "optimizer", "lr",
                  "head_lr_scale", "weight_decay", "warmup_epochs", "schedule", "accumulate", "class_weights", "sampler", "ema",
                  "label_smoothing", "grad_clip", "seed", "device", "precision", "channels_last", "compile", "workers",
                  "cache", "feature_cache", "frozen_engine", "head", "pooling", "dropout", "train_bn", "pretrained", "weights", "data_dir",
                  "download", "val_split", "test_split", "strict", "exclude", "relabel", "patience", "loggers", "callbacks", "task")


def _interrupted(stop: KeyboardInterrupt, resume: str | None) -> None:
    """Ctrl-C: one line saying how far the run got and the exact command that continues it; exit 130."""
    import shlex
    import sys

    from ..errors import RunInterrupted
    directory = getattr(stop, "directory", None) or resume
    if directory is None:
        click.echo("Interrupted before the run directory was made: nothing to resume; run the command again",
                   err=True)
    else:
        done = (f" after {stop.epochs_done} of {stop.epochs_planned} epoch(s)"
                if isinstance(stop, RunInterrupted) else "")
        click.echo(f"Interrupted{done}; continue with: tlf train --resume {shlex.quote(str(directory))}", err=True)
    sys.exit(130)


def _write_report(run, quiet: bool) -> None:
    """The end-of-run evaluation and report.html; Ctrl-C here leaves a finished run, which a
    resume completes with its report."""
    from contextlib import nullcontext

    from .. import messages
    from ..errors import RunInterrupted
    from ..insight.evaluate_run import EvaluationSettings, evaluate
    from ..insight.report import write_run_report
    try:
        with nullcontext() if quiet else messages.phase("final evaluation: the best checkpoint, then report.html"):
            evaluate(run.directory, EvaluationSettings(device=run.config.device, precision=run.config.precision,
                                                       workers=run.config.workers, batch_size=run.config.batch_size),
                     logits=run.best_val_logits)
            write_run_report(run.directory)
    except KeyboardInterrupt as exc:
        raise RunInterrupted(run.directory, run.summary["epochs"], run.summary["planned_epochs"]) from exc


@click.command(epilog=_help_defaults())
@settings(*TRAIN_SETTINGS)
@click.option("--out", type=click.Path(file_okay=False), help="Folder for run directories (default: runs).")
@click.option("--name", help="Run directory name (default: dataset-backbone-policy-timestamp).")
@click.option("--config", "config_file", type=click.Path(dir_okay=False), help="YAML/JSON settings; flags override it.")
@click.option("--resume", type=click.Path(file_okay=False, exists=True),
              help="Continue this run directory (with --epochs N: to N epochs, at least the planned number).")
@click.option("--quiet", "-q", is_flag=True, help="No progress output; only the final line.")
@click.option("--json", "as_json", is_flag=True,
              help="Print the summary as one JSON object on stdout (progress stays on stderr; -q drops it).")
@click.option("--report/--no-report", "html_report", default=True, show_default=True,
              help="At the end, evaluate the best checkpoint and write report.html (as 'tlf evaluate' does).")
def train(config_file: str | None, resume: str | None, quiet: bool, as_json: bool, html_report: bool,
          **flags) -> None:
    """Train a classifier: dataset + backbone + freeze policy + augmentations.

    \b
    tlf train                                    # offline default: synthetic data
    tlf train --dataset flowers --policy partial:conv5
    tlf train --dataset cats_and_dogs --backbone vgg16 --policy transfer
    tlf train --resume runs/flowers-efficientnet_lite0-transfer-...
    tlf train --resume runs/flowers-... --epochs 20   # continue to more epochs

    It ends with the headline: accuracy, time, the report, the model and what to run next;
    the last line names the run directory.
    """
    from ..engine.api import train as run_training
    try:
        run = run_training(config_file, resume=Path(resume) if resume else None, quiet=quiet, **flags)
        summary = run.summary
        if summary is None:  # a non-zero rank under torchrun
            return
        if html_report and summary["epochs"]:
            _write_report(run, quiet)
    except KeyboardInterrupt as stop:
        _interrupted(stop, resume)
    if as_json:
        click.echo(json.dumps(summary))
        return
    from ..insight.headline import headline_lines
    for line in headline_lines(summary["run_dir"]):
        click.echo(line)
    click.echo(f"run directory: {summary['run_dir']}")
