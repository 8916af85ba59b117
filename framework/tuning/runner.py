"""``tlf tune``: an Optuna study whose trials are normal tlf runs.

Each trial samples its settings from the search space, trains ``OUT/runs/trial-NNNN`` and
reports every epoch's criterion (the task's: validation accuracy, mAP for label sets) to the
study's pruner, which may stop it there; the objective is the run's best criterion. A trial that fails (out of memory,
a setting no run can use) is recorded as failed with its reason, and the study goes on.
Several processes given the same ``storage`` and ``study`` share one study and run
disjoint trials: that is Optuna's own scale-out.
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, Callable

from .. import messages
from ..config import load_config
from ..errors import TlfError
from ..paths import slug
from ..tracking import check_loggers
from .results import trial_row, write_results
from .space import SearchSpace, load_space, parse_space
from .storage import default_storage, open_storage, require_optuna, safe_url

SAMPLERS = ("tpe", "random")
PRUNERS = ("median", "hyperband", "none")


def make_sampler(name: str, seed: int | None) -> Any:
    """TPE (default) or random sampling; ``seed`` None for studies shared between processes
    (seeded workers would all draw the same first trials)."""
    import optuna
    if name == "tpe":
        return optuna.samplers.TPESampler(seed=seed)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    raise TlfError(f"unknown sampler {name!r}", hint=f"choose one of: {', '.join(SAMPLERS)}")


def make_pruner(name: str) -> Any:
    """Pruning on each epoch's criterion (the task's): the median rule (after 2 finished trials,
    from epoch 2 on), Hyperband over epochs, or none."""
    import optuna
    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=2)
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource="auto", reduction_factor=3)
    if name == "none":
        return optuna.pruners.NopPruner()
    raise TlfError(f"unknown pruner {name!r}", hint=f"choose one of: {', '.join(PRUNERS)}")


def _objective(space: SearchSpace, base: Any, runs: Path, quiet: bool) -> Callable[[Any], float]:
    import optuna

    from ..engine import api

    def objective(trial: optuna.Trial) -> float:
        settings = space.suggest(trial)
        run_dir = runs / f"trial-{trial.number:04d}"
        trial.set_user_attr("run_dir", str(run_dir))
        config = dataclasses.replace(base, **settings, out=str(runs), name=run_dir.name)
        trial.set_user_attr("config", {k: v for k, v in config.to_dict().items() if k not in ("out", "name")})
        pruned_at: list[int] = []

        def report(epoch: int, row: dict) -> bool:
            trial.report(row["criterion"], epoch)  # what the objective maximises: the task's criterion
            if trial.should_prune():
                pruned_at.append(epoch)
                return True
            return False

        try:
            run = api.train(config, quiet=quiet, should_stop=report)
        except Exception as exc:
            trial.set_user_attr("error", str(exc) if isinstance(exc, TlfError) else f"{type(exc).__name__}: {exc}")
            raise
        trial.set_user_attr("metric", run.summary.get("best_metric"))  # what the value is: val_acc, val_map, ...
        if pruned_at:
            raise optuna.TrialPruned(f"pruned after epoch {pruned_at[0]}")
        return float(run.summary["best_val_accuracy"])

    return objective


def tune(space: str | Path | dict, *, trials: int | None = 10, timeout: float | None = None,
         study: str | None = None, storage: str | None = None, out: str | Path | None = None,
         sampler: str = "tpe", pruner: str = "median", config: str | Path | None = None, quiet: bool = False,
         say: Callable[[str], None] | None = None, **settings: Any) -> dict[str, Any]:
    """Search ``space`` (a YAML file or a mapping) with Optuna and return tune.json's content.

    ``trials`` and ``timeout`` (seconds) bound this process's share of the study (None: no
    bound; at least one must be set). ``study`` names the study (default: the dataset) and
    resumes it when it exists; ``storage`` is an Optuna storage URL shared by several processes
    (default: SQLite in ``out``, default ``tuning/<study>``). Keyword ``settings`` and the
    ``config`` file are the run settings every trial starts from.
    """
    optuna = require_optuna()
    if trials is None and timeout is None:
        raise TlfError("neither a number of trials nor a timeout: the search would never end",
                       hint="pass --trials N and/or --timeout SECONDS")
    if trials is not None and trials < 1:
        raise TlfError(f"trials must be at least 1, got {trials}", hint="e.g. --trials 20")
    space = parse_space(space) if isinstance(space, dict) else load_space(space)
    settings = {k: v for k, v in settings.items() if v is not None and k not in ("out", "name")}
    base = load_config(config, **settings)
    check_loggers(base.loggers)
    for name, value in space.fixed.items():
        base = dataclasses.replace(base, **{name: value})
    # the trials are chosen among on validation; a test split scores only the chosen one (tlf evaluate
    # --split test), never every trial, so that it chooses nothing
    base = dataclasses.replace(base, test_split=False)
    name = study or slug(base.dataset, empty="study")
    out = Path(out) if out is not None else Path("tuning") / slug(name, empty="study")
    out.mkdir(parents=True, exist_ok=True)
    url = storage or default_storage(out)
    say = say or messages.notice
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.ERROR)  # tlf says what happened, on one line per trial
    try:
        the_study = optuna.create_study(study_name=name, storage=open_storage(url), direction="maximize",
                                        sampler=make_sampler(sampler, base.seed if storage is None else None),
                                        pruner=make_pruner(pruner), load_if_exists=True)
        earlier = len(the_study.trials)
        if earlier:
            say(f"study {name!r}: continuing after {earlier} trial(s)")

        def progress(study: Any, trial: Any) -> None:
            row = trial_row(trial)
            value = "" if row["value"] is None else f" {row['metric'] or 'value'} {row['value']:.4f}"
            why = f": {row['error']}" if row["error"] else ""
            say(f"trial {trial.number} {row['state']}{value} {json.dumps(row['params'], default=str)}{why}")

        the_study.optimize(_objective(space, base, out / "runs", quiet), n_trials=trials, timeout=timeout,
                           catch=(Exception,), callbacks=[progress], gc_after_trial=True)
        return write_results(the_study, out, safe_url(url))
    finally:
        optuna.logging.set_verbosity(verbosity)
