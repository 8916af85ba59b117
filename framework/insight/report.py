"""report.html: one self-contained page per run (and one per comparison folder), rendered with
Jinja2 from the files the run directory already holds; images inlined as data: URIs."""
from __future__ import annotations

import json
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from markupsafe import Markup

from .. import __version__
from ..errors import TlfError
from ..registry import get_registry
from ..rundir import read_json, read_run_config
from ..safe_files import atomic_write
from ..task import ReportSection, TaskRequest
from ..tuning.results import format_value, local_run_dir
from ..plots.png import data_uri
from . import templates
from .headline import headline

STRATEGIES = ("scratch", "transfer", "partial", "init")  # the four strategies of docs/strategies.md
IMAGES = {"curves": "curves.png"}
SCALARS = ("accuracy", "macro_f1", "images", "checkpoint", "precision")  # shown first; other scalars follow


def _environment():
    import jinja2
    return jinja2.Environment(autoescape=True)


def _json(path: Path) -> Any:
    if not path.is_file():
        return None
    try:
        return read_json(path)
    except ValueError as exc:
        raise TlfError(f"{path} is damaged: {exc}", hint=f"delete it and run 'tlf evaluate {path.parent}' again") from None


def _strategies() -> list[tuple[str, str]]:
    registry = get_registry()
    return [(name, registry.resolve("policies", name + (":conv5" if name == "partial" else ""))[0].description)
            for name in STRATEGIES]


def _inspect(config: Any, classes: list[str]) -> tuple[dict | None, str]:
    """The ``tlf inspect`` table of the run's backbone under its policy, or why there is none."""
    from ..inspection import inspect_model
    try:
        info = inspect_model(config.backbone, config.policy, config.image_size, len(classes), config.head,
                             train_bn=bool(config.train_bn), pooling=config.pooling)
    except TlfError as exc:
        return None, f"cannot show the frozen stages: {exc}"
    return {**info, "rows": [*info["stages"], info["head"]]}, ""


def _metrics(evaluation: dict) -> list[tuple[str, str]]:
    keys = [*SCALARS, *(k for k, v in evaluation.items() if k not in SCALARS and isinstance(v, (int, float, str))
                        and k not in ("run_dir", "dataset", "confusion_shown", "label_errors"))]
    shown = []
    for key in keys:
        value = evaluation.get(key)
        if value is not None:
            shown.append((key.replace("_", " "), f"{value:.4f}" if isinstance(value, float) else str(value)))
    return shown


def _size(path: Path) -> str:
    size = path.stat().st_size
    return f"{size / 2**20:.1f} MiB" if size >= 2**20 else f"{size / 2**10:.0f} KiB"


def run_page(run_dir: str | Path) -> str:
    """The HTML of a run's report page."""
    run_dir = Path(run_dir)
    config = read_run_config(run_dir)
    summary = _json(run_dir / "summary.json") or {}
    evaluation = _json(run_dir / "evaluation.json")
    classes = _json(run_dir / "classes.json") or []
    images = {key: data_uri(run_dir / name) for key, name in IMAGES.items()}
    data = evaluation.get("data") if evaluation else None
    counts = [(c, data["train_counts"].get(c, 0), data["val_counts"].get(c, 0)) for c in classes] if data else []
    inspect, inspect_error = _inspect(config, classes)
    exports = [(p.name, _size(p)) for p in sorted(run_dir.glob("*.onnx"))]
    task = _task_sections(config.task, classes, evaluation, run_dir)
    before, after = ([s for s in task if s.before_metrics == first] for first in (True, False))
    sections = [("headline", "result"), ("training", "training"), *((s.id, s.name) for s in before),
                ("metrics", "metrics"), *([("test", "test split")] if summary.get("test") else []),
                *((s.id, s.name) for s in after),
                ("data", "data"), ("strategy", "strategy"), ("export", "export"), ("settings", "settings")]
    policy = summary.get("policy") or config.policy
    return _environment().from_string(templates.RUN).render(
        title=f"{config.dataset} · {config.backbone} · {policy}", run_dir=str(run_dir), version=__version__,
        written=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), sections=sections,
        settings=[(k, json.dumps(v) if isinstance(v, (list, dict)) else v) for k, v in config.to_dict().items()],
        data=data, counts=counts, policy=policy, policy_family=policy.split(":")[0], strategies=_strategies(),
        inspect=inspect, inspect_error=inspect_error, summary=summary, images=images, evaluation=evaluation,
        metrics=_metrics(evaluation) if evaluation else [], exports=exports, headline=headline(run_dir),
        test=_metrics(summary.get("test") or {}), before_metrics=[_render(s, evaluation) for s in before], after_metrics=[_render(s, evaluation) for s in after])


def _task_sections(task: str | None, classes: list[str], evaluation: dict | None, run_dir: Path) -> list[ReportSection]:
    """The sections the run's task shows of its evaluation (:meth:`tlf.task.Task.report_sections`); none before one."""
    if not evaluation:
        return []
    made = get_registry().create("tasks", task or "single-label", TaskRequest(classes))
    return made.report_sections(evaluation, run_dir)


def _render(section: ReportSection, evaluation: dict) -> Markup:
    """One task section's HTML (autoescaped like the page)."""
    return Markup(_environment().from_string(section.template).render(evaluation=evaluation, **section.context))


def write_run_report(run_dir: str | Path) -> Path:
    """Write ``RUN_DIR/report.html`` and return its path."""
    path = Path(run_dir) / "report.html"
    text = run_page(run_dir)
    atomic_write(path, lambda f: f.write(text))
    return path


def write_comparison_report(comparison: Any) -> Path:
    """Write ``report.html`` into a comparison's folder (after ``comparison.write``), linking to
    each run's own page (written for runs that have none)."""
    directory = Path(comparison.directory)
    header, rows = comparison.rows()
    runs = []
    for run in comparison.runs:
        page = run.directory / "report.html"
        if not page.is_file():
            write_run_report(run.directory)
        accuracy = run.summary.get("best_val_accuracy")
        runs.append({"name": run.directory.name, "link": Path(os.path.relpath(page, directory)).as_posix(),
                     "backbone": run.backbone, "policy": run.policy, "seed": run.seed,
                     "accuracy": "–" if accuracy is None else f"{accuracy:.4f}"})
    text = _environment().from_string(templates.COMPARE).render(
        title=f"Strategy comparison: {comparison.title()}", directory=str(directory), version=__version__,
        written=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), header=header, rows=rows,
        note=comparison.note(), image=data_uri(directory / "comparison.png"), runs=runs)
    path = directory / "report.html"
    atomic_write(path, lambda f: f.write(text))
    return path


def write_tune_report(folder: str | Path, result: dict[str, Any]) -> Path:
    """Write ``report.html`` into a tune folder (``result``: :func:`tlf.tuning.results.read_tune`):
    the best trial and its config, every trial, Optuna's history and importance plots; linking
    to each trial's run page (written for runs that have none)."""
    directory = Path(folder)
    names = sorted({p for t in result["trials"] for p in t["params"]})
    best_number = (result.get("best") or {}).get("number")
    links: dict[int, str] = {}
    trials = []
    for t in result["trials"]:
        run_dir = local_run_dir(directory, t)
        if run_dir is not None and (run_dir / "summary.json").is_file():
            if not (run_dir / "report.html").is_file():
                write_run_report(run_dir)
            links[t["number"]] = Path(os.path.relpath(run_dir / "report.html", directory)).as_posix()
        trials.append({"number": t["number"], "state": t["state"], "value": format_value(t["value"]),
                       "params": [format_value(t["params"].get(n)) for n in names], "epochs": format_value(t["epochs"]),
                       "duration": format_value(t.get("duration")), "error": t["error"], "best": t["number"] == best_number,
                       "run": Path(t["run_dir"]).name if t["run_dir"] else "", "link": links.get(t["number"])})
    best = None
    best_config = None
    if result.get("best"):
        row = result["best"]
        best = {"number": row["number"], "value": format_value(row["value"]), "link": links.get(row["number"]),
                "params": [(k, format_value(v)) for k, v in row["params"].items()], "config_file": row["config_file"]}
        config_file = directory / "best.yaml"
        best_config = config_file.read_text() if config_file.is_file() else None
    counts = ", ".join(f"{n} {state}" for state, n in result["counts"].items() if n)
    text = _environment().from_string(templates.TUNE).render(
        title=f"Hyperparameter search: {result['study']}", directory=str(directory), storage=result["storage"],
        version=__version__, written=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        sections=[("best", "best trial"), ("trials", "trials"), ("history", "history"), ("importance", "importance")],
        note=result.get("note"), best=best, best_config=best_config, counts=f"{len(trials)} trials: {counts}",
        params=names, trials=trials,
        images={key: data_uri(directory / f"{key}.png") for key in ("history", "importance")})
    path = directory / "report.html"
    atomic_write(path, lambda f: f.write(text))
    return path
