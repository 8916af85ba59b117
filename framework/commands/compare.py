"""``tlf compare`` (train and compare strategies) and ``tlf report`` (compare existing runs)."""
from __future__ import annotations

import json

import click

from .options import settings

DEFAULT_POLICIES = "scratch,transfer,partial:conv5,init"


def _show(comparison, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(comparison.to_dict()))
        return
    from ..messages import plain_console
    console = plain_console()
    for table in comparison.rich_tables():
        console.print(table)
    click.echo(f"comparison: {comparison.directory} (comparison.md, .csv, .json, .png)")


@click.command()
@settings("dataset")
@click.option("--backbone", "-b", "backbone", multiple=True, help="Backbone (repeatable or comma-separated).")
@click.option("--backbones", "backbones", multiple=True, help="Backbones, e.g. vgg16,resnet50,convnext_tiny: a grid.")
@click.option("--policies", "-p", default=DEFAULT_POLICIES, show_default=True, help="Freeze policies, comma-separated.")
@click.option("--seeds", type=click.IntRange(min=1), default=1, show_default=True, help="Seeds per strategy.")
@click.option("--seed", type=int, default=0, show_default=True, help="First seed (runs use seed .. seed+seeds-1).")
@click.option("--out", "-o", type=click.Path(file_okay=False),
              help="Comparison folder; run again with the same folder to resume (default: comparisons/DATASET).")
@settings("epochs", "augment", "image_size", "batch_size", "optimizer", "lr", "weight_decay", "label_smoothing", "head",
          "pooling", "patience", "device", "precision", "channels_last", "workers", "cache", "data_dir", "download", "val_split", "test_split",
          "loggers", "callbacks", "task")
@click.option("--config", "config_file", type=click.Path(dir_okay=False), help="YAML/JSON settings for every run.")
@click.option("--storage", help="Optuna storage URL shared by several 'tlf compare' workers, which split the grid "
                                "(sqlite:///PATH, postgresql://..., journal:PATH; docs/tuning.md).")
@click.option("--study", help="Name of the shared grid in --storage (default: compare-OUT_FOLDER_NAME).")
@click.option("--quiet", "-q", is_flag=True, help="No training progress; only one line per run and the table.")
@click.option("--json", "as_json", is_flag=True,
              help="Print the comparison as one JSON object on stdout (progress stays on stderr).")
def compare(dataset: str | None, backbone: tuple[str, ...], backbones: tuple[str, ...], policies: str, seeds: int,
            seed: int, out: str | None, config_file: str | None, storage: str | None, study: str | None, quiet: bool,
            as_json: bool, **settings) -> None:
    """Train each freeze policy (x backbone x seed) on one dataset and compare them.

    \b
    tlf compare --dataset flowers --backbone efficientnet_lite0 --seeds 3
    tlf compare --dataset cats_and_dogs --backbones vgg16,resnet50,convnext_tiny --epochs 5
    tlf compare --dataset folder:photos --policies transfer,partial:conv4,partial:conv5 --out cmp

    Runs go to OUT/runs/BACKBONE-POLICY-sSEED, one after another. Interrupted? Run the same
    command again: finished runs are kept, interrupted ones resume, the rest start.
    Writes OUT/comparison.md, .csv, .json and .png. With --storage, start the same command
    once per GPU or machine: the workers split the grid, and no cell runs twice.
    """
    from ..experiments import compare as run_comparison
    comparison = run_comparison(dataset, [*backbone, *backbones], policies, seeds=seeds, seed=seed, out=out,
                                config=config_file, quiet=quiet, storage=storage, study=study, **settings)
    _show(comparison, as_json)


@click.command()
@click.argument("run_dirs", nargs=-1, required=True, type=click.Path(file_okay=False, exists=True))
@click.option("--out", "-o", type=click.Path(file_okay=False),
              help="Where to write the comparison files (default: the comparison folder, else the runs' parent).")
@click.option("--json", "as_json", is_flag=True, help="Print the comparison (or the study) as one JSON object.")
@click.option("--html", is_flag=True,
              help="Write a self-contained report.html: for one run directory its own page, for a tune folder "
                   "the study's page, otherwise the comparison page linking to each run's page.")
def report(run_dirs: tuple[str, ...], out: str | None, as_json: bool, html: bool) -> None:
    """Rebuild the comparison table and plots from finished runs.

    RUN_DIRS are run directories, folders of them (e.g. runs/) or comparison folders made by
    'tlf compare'. Runs are grouped by dataset, backbone and policy; seeds are averaged.
    With --html and one run directory: only that run's report.html.

    A folder made by 'tlf tune' is reported alone: its study read again from its storage,
    the trials table and the best config (--json: as tune.json; --html: a page with
    Optuna's history and importance plots).
    """
    from pathlib import Path

    from ..tuning.results import is_tune_folder
    tune_folders = [d for d in run_dirs if is_tune_folder(d)]
    if tune_folders:
        _report_tune(tune_folders[0] if len(run_dirs) == 1 else None, run_dirs, out, as_json, html)
        return
    if html and len(run_dirs) == 1 and (Path(run_dirs[0]) / "config.yaml").is_file():
        from ..insight.report import write_run_report
        click.echo(f"report: {write_run_report(run_dirs[0])}")
        return
    from ..experiments import report as build_report
    comparison = build_report(run_dirs, out=out)
    skipped = comparison.settings["skipped_unfinished"]
    if skipped and not as_json:
        click.echo(f"left out {len(skipped)} unfinished run(s): {', '.join(skipped)}", err=True)
    _show(comparison, as_json)
    if html:
        from ..insight.report import write_comparison_report
        click.echo(f"report: {write_comparison_report(comparison)}", err=as_json)


def _report_tune(folder: str | None, paths: tuple[str, ...], out: str | None, as_json: bool, html: bool) -> None:
    """``tlf report TUNE_FOLDER``: the study read again from its storage, its files rewritten."""
    from ..errors import TlfError
    from ..messages import plain_console
    from ..tuning.results import read_tune, rich_table
    if folder is None:
        raise TlfError(f"a folder made by 'tlf tune' is reported alone, not with other paths ({', '.join(paths)})",
                       hint="run 'tlf report TUNE_FOLDER' by itself")
    if out is not None:
        raise TlfError(f"--out does not apply to the tune folder {folder}: its files are written in it",
                       hint=f"run 'tlf report {folder}' without --out")
    result = read_tune(folder)
    if as_json:
        click.echo(json.dumps(result, default=str))
    else:
        console, table = plain_console(), rich_table(result)
        if not console.is_terminal:  # piped: as wide as the table, not rich's default of 80 columns
            console = plain_console(width=max(console.width, console.measure(table, options=console.options.update_width(1000)).maximum))
        console.print(table)
        best = result.get("best")
        if best:
            click.echo(f"best: trial {best['number']}, val accuracy {best['value']:.4f}; "
                       f"tlf train --config {best['config_file']}")
        else:
            click.echo("no trial finished: no best config")
    if html:
        from ..insight.report import write_tune_report
        click.echo(f"report: {write_tune_report(folder, result)}", err=as_json)
