"""A study's results: its trials as plain data, the best trial's config, Optuna's own plots,
and the files of a tune folder (tune.json, trials.csv, best.yaml, history.png,
importance.png). ``tlf tune`` writes them at the end of its share of the study; ``tlf report``
on the folder reads the study again (trials other workers finished since are in it) and
writes them anew.
"""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

from ..errors import TlfError
from ..plots.png import pyplot, save_figure
from ..rundir import read_json, read_run_config
from ..safe_files import atomic_write
from .storage import open_storage, require_optuna

RESULT_FILE = "tune.json"
FILES = (RESULT_FILE, "trials.csv", "best.yaml", "history.png", "importance.png")
STATES = ("complete", "pruned", "fail", "running", "waiting")


def trial_row(trial: Any) -> dict[str, Any]:
    """One trial as plain data; ``duration`` in seconds (None while it runs)."""
    start, end = trial.datetime_start, trial.datetime_complete
    return {"number": trial.number, "state": trial.state.name.lower(), "value": trial.value,
            "params": trial.params, "epochs": len(trial.intermediate_values) or None,
            "duration": round((end - start).total_seconds(), 1) if start and end else None,
            "run_dir": trial.user_attrs.get("run_dir"), "error": trial.user_attrs.get("error"),
            "metric": trial.user_attrs.get("metric")}


def best_config(trial: Any) -> dict[str, Any]:
    """The best trial's settings as ``tlf train --config`` takes them: its run's resolved
    config.yaml when that run directory is here, else the settings the trial started with."""
    run_dir = trial.user_attrs.get("run_dir")
    if run_dir and (Path(run_dir) / "config.yaml").is_file():
        config = read_run_config(run_dir).to_dict()
    else:
        config = dict(trial.user_attrs.get("config") or {})
    return {k: v for k, v in config.items() if k not in ("out", "name", "test_split")}  # a trial's test_split is off


def write_plots(study: Any, out: Path) -> list[str]:
    """Optuna's own history and importance plots (matplotlib); importance needs two finished
    trials with different settings."""
    import warnings

    from optuna.visualization import matplotlib as ovm

    plt = pyplot()

    written = []
    done = [t for t in study.trials if t.state.name == "COMPLETE"]
    plots = {"history.png": ovm.plot_optimization_history}
    if len(done) >= 2 and len({json.dumps(t.params, sort_keys=True, default=str) for t in done}) >= 2:
        plots["importance.png"] = ovm.plot_param_importances
    for name, plot in plots.items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # optuna marks its matplotlib backend experimental
            try:
                axes = plot(study)
            except (ValueError, RuntimeError):  # e.g. no parameter varies among the finished trials
                continue
        figure = getattr(axes, "figure", None) or plt.gcf()
        figure.tight_layout()
        save_figure(figure, out / name)
        plt.close(figure)
        written.append(name)
    return written


def write_results(study: Any, out: Path, storage: str) -> dict[str, Any]:
    """tune.json, trials.csv, best.yaml and the plots in ``out``; returns tune.json's content."""
    import yaml
    trials = [trial_row(t) for t in study.trials]
    result: dict[str, Any] = {"study": study.study_name, "storage": storage, "out": str(out), "trials": trials,
                              "counts": {s: sum(t["state"] == s for t in trials) for s in STATES}, "best": None}
    finished = [t for t in study.trials if t.state.name == "COMPLETE"]
    if finished:
        best = study.best_trial
        result["best"] = {**trial_row(best), "config_file": str(out / "best.yaml")}
        atomic_write(out / "best.yaml", lambda f: yaml.safe_dump(best_config(best), f, sort_keys=False))
    buf = io.StringIO()
    names = sorted({p for t in trials for p in t["params"]})
    writer = csv.writer(buf)
    writer.writerow(["number", "state", "value", "epochs", "duration", *names, "run_dir", "error"])
    for t in trials:
        writer.writerow([t["number"], t["state"], t["value"], t["epochs"], t["duration"],
                         *(t["params"].get(n) for n in names), t["run_dir"], t["error"]])
    atomic_write(out / "trials.csv", lambda f: f.write(buf.getvalue()))
    result["plots"] = write_plots(study, out)
    atomic_write(out / RESULT_FILE, lambda f: f.write(json.dumps(result, indent=2, default=str) + "\n"))
    return result


def is_tune_folder(path: str | Path) -> bool:
    """A folder ``tlf tune`` wrote into."""
    return (Path(path) / RESULT_FILE).is_file()


def _reachable(url: str) -> bool:
    """False for a SQLite or journal file that is not there: opening it would create an empty
    study storage (a relative path read from another working directory, a moved folder)."""
    if url.startswith("journal:"):
        return Path(url.removeprefix("journal:")).is_file()
    if url.startswith("sqlite"):
        from sqlalchemy.engine import make_url
        database = make_url(url).database
        return bool(database) and Path(database).is_file()
    return True


def read_tune(folder: str | Path) -> dict[str, Any]:
    """A tune folder's results, from its study when the storage can be read (and its files
    written again from it), else as tune.json recorded them (``note`` says why)."""
    folder = Path(folder)
    try:
        recorded = read_json(folder / RESULT_FILE)
        name, storage = recorded["study"], recorded["storage"]
    except (ValueError, KeyError, TypeError) as exc:
        raise TlfError(f"{folder / RESULT_FILE} is damaged: {exc}",
                       hint=f"run 'tlf tune ... --study NAME --out {folder}' again to rewrite it") from None
    why = None
    if not _reachable(storage):
        why = f"its storage {storage} is not there"
    else:
        try:
            study = require_optuna().load_study(study_name=name, storage=open_storage(storage, heartbeat=False))
        except TlfError as exc:
            why = exc.message
        except KeyError:
            why = f"its storage {storage} has no study {name!r}"
        else:
            return write_results(study, folder, storage)
    return {**recorded, "note": f"as {RESULT_FILE} recorded it: {why}"}


def local_run_dir(folder: Path, trial: dict[str, Any]) -> Path | None:
    """A trial's run directory: under ``folder/runs`` when it is there (the folder may have
    moved, or the study run from another working directory), else where the trial recorded it."""
    if not trial.get("run_dir"):
        return None
    for path in (folder / "runs" / Path(trial["run_dir"]).name, Path(trial["run_dir"])):
        if (path / "config.yaml").is_file():
            return path
    return None


def format_value(value: Any) -> str:
    """A parameter or objective value for a table: 4 significant digits for floats."""
    if value is None:
        return "–"
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def rich_table(result: dict[str, Any]) -> Any:
    """The trials of a study as a terminal table (rich), the best one marked with ``*``."""
    from rich import box
    from rich.table import Table
    names = sorted({p for t in result["trials"] for p in t["params"]})
    counts = ", ".join(f"{n} {state}" for state, n in result["counts"].items() if n)
    table = Table(title=f"study {result['study']}: {len(result['trials'])} trials ({counts})",
                  caption=result.get("note"), box=box.SIMPLE_HEAD)
    metric = next((t["metric"] for t in result["trials"] if t.get("metric")), "value")  # the task's criterion
    for column in ("trial", "state", metric, *names, "epochs", "seconds", "run"):
        table.add_column(column, justify="right" if column in ("trial", metric, "epochs", "seconds") else "left")
    best = (result.get("best") or {}).get("number")
    for t in result["trials"]:
        table.add_row(f"{t['number']}{'*' if t['number'] == best else ''}", t["state"], format_value(t["value"]),
                      *(format_value(t["params"].get(n)) for n in names), format_value(t["epochs"]),
                      format_value(t.get("duration")), t["error"] or (Path(t["run_dir"]).name if t["run_dir"] else ""))
    return table
