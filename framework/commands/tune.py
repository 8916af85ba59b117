"""``tlf tune``: hyperparameter search on Optuna, every trial a normal run directory."""
from __future__ import annotations

import json
import shlex

import click

from .train import TRAIN_SETTINGS
from .options import settings

PRUNERS = ("median", "hyperband", "none")
SAMPLERS = ("tpe", "random")


@click.command()
@click.option("--space", "-s", "space", required=True, type=click.Path(dir_okay=False),
              help="Search space YAML: 'setting: loguniform(a, b) | uniform(a, b) | int(a, b) | logint(a, b) | "
                   "[choices]' per line (docs/tuning.md).")
@click.option("--trials", "-n", type=click.IntRange(min=1), help="Trials this process runs (default: 10 without "
                                                                  "--timeout).")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True),
              help="Stop starting trials after this many seconds.")
@click.option("--study", help="Study name; an existing study of that name is continued (default: the dataset).")
@click.option("--storage", help="Optuna storage shared by several 'tlf tune' processes: sqlite:///PATH, "
                                "postgresql://..., mysql+pymysql://... or journal:PATH (default: OUT/optuna.db).")
@click.option("--sampler", type=click.Choice(SAMPLERS), default="tpe", show_default=True, help="Optuna sampler.")
@click.option("--pruner", type=click.Choice(PRUNERS), default="median", show_default=True,
              help="Stop unpromising trials on each epoch's criterion (val accuracy; label sets: val mAP).")
@click.option("--out", "-o", type=click.Path(file_okay=False),
              help="Folder for the study's runs and results (default: tuning/STUDY).")
@settings(*(name for name in TRAIN_SETTINGS if name != "sampler"))  # --sampler is Optuna's here
@click.option("--config", "config_file", type=click.Path(dir_okay=False),
              help="YAML/JSON settings every trial starts from; flags override it, the space overrides both.")
@click.option("--quiet", "-q", is_flag=True, help="No training progress; only one line per trial.")
@click.option("--json", "as_json", is_flag=True,
              help="Print the study (trials, best trial and config) as one JSON object on stdout.")
def tune(space: str, trials: int | None, timeout: float | None, study: str | None, storage: str | None,
         sampler: str, pruner: str, out: str | None, config_file: str | None, quiet: bool, as_json: bool,
         **settings) -> None:
    """Search hyperparameters with Optuna: every trial is a normal run directory.

    \b
    tlf tune --dataset flowers --space space.yaml --trials 20 --epochs 5
    tlf tune --space space.yaml --study flowers-lr --timeout 3600          # continue it later
    tlf tune --space space.yaml --study s --storage sqlite:///shared.db    # one per GPU/machine

    Runs go to OUT/runs/trial-NNNN; OUT gets tune.json, trials.csv, history.png,
    importance.png and best.yaml, which 'tlf train --config OUT/best.yaml' takes.
    """
    from ..tuning import tune as run_tune
    result = run_tune(space, trials=trials if trials is not None or timeout is not None else 10, timeout=timeout,
                      study=study, storage=storage, out=out, sampler=sampler, pruner=pruner, config=config_file,
                      quiet=quiet, **settings)
    if as_json:
        click.echo(json.dumps(result, default=str))
        return
    counts = ", ".join(f"{n} {state}" for state, n in result["counts"].items() if n)
    click.echo(f"study {result['study']}: {len(result['trials'])} trials ({counts})")
    best = result["best"]
    if best is None:
        click.echo("no trial finished: no best config")
    else:
        click.echo(f"best: trial {best['number']}, {best['metric'] or 'value'} {best['value']:.4f}, "
                   f"{json.dumps(best['params'], default=str)}")
        click.echo(f"best config: {best['config_file']} (tlf train --config {best['config_file']})")
        if best["run_dir"]:
            click.echo(f"test split (when the data has one): not scored by the trials; score the best run once with "
                       f"tlf evaluate {shlex.quote(best['run_dir'])} --split test")
    click.echo(f"results: {result['out']} (tune.json, trials.csv, {', '.join(result['plots'])})")
