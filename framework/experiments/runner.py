"""Running a comparison: every (backbone, policy, seed) as one normal run, resumable.

Runs live in ``OUT/runs/<backbone>-<policy>-s<seed>``. Running the same comparison again
with the same ``OUT`` skips finished runs (``summary.json`` present), resumes interrupted
ones (``last.pt`` present) and starts over runs that had not finished an epoch.
"""
from __future__ import annotations

import gc
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from .. import messages
from ..config import RESUMABLE, RunConfig, load_config, read_config_file
from ..errors import TlfError
from ..paths import slug
from ..plan import canonical_name
from ..rundir import read_json, read_run_config
from ..setting_checks import RANGES, Range, check_value
from .cells import ComparisonCell, plan_runs, split_names
from .comparison_files import write_comparison
from .results import Comparison, load_results
from .scaleout import claimed_cells

# a run found in OUT is reused when only these differ: how it runs (RESUMABLE) and where it lives; not
# epochs (resumable to more): a run planned shorter is another run, its schedule would be stretched
REUSABLE = (*(k for k in RESUMABLE if k != "epochs"), "out", "name")
IDENTITY = ("dataset", "backbone", "policy", "seed")  # what makes a run the one planned


def run_state(path: Path) -> str:
    """``finished`` (summary.json), ``interrupted`` (last.pt), ``empty`` (no checkpoint yet) or ``new``."""
    if (path / "summary.json").is_file():
        return "finished"
    if (path / "last.pt").is_file():
        return "interrupted"
    return "empty" if path.exists() else "new"


def _check_same_settings(path: Path, wanted: dict[str, Any], asked: set[str]) -> None:
    """A run found in OUT must have been made with the settings asked for now (those given
    explicitly, and the run's identity; defaults the engine resolves are not compared)."""
    done = read_run_config(path).to_dict()
    differ = [f"{key}={done.get(key)!r} (asked {wanted[key]!r})" for key in (*IDENTITY, *sorted(asked))
              if key not in REUSABLE and done.get(key) != wanted[key]]
    if differ:
        raise TlfError(f"{path} was made with other settings: {', '.join(differ)}",
                       hint="use another --out for these settings, or delete that run directory to redo it")


def _release_memory() -> None:
    """Drop the finished run's model, optimizer and feature cache before the next run starts."""
    import torch
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def compare(dataset: str | None = None, backbones: str | Sequence[str] | None = None,
            policies: str | Sequence[str] = "scratch,transfer,partial:conv5,init", *, seeds: int = 1, seed: int = 0,
            out: str | Path | None = None, config: str | Path | None = None, quiet: bool = False,
            log: Callable[[str], None] | None = None, storage: str | None = None, study: str | None = None,
            **settings: Any) -> Comparison:
    """Train every (backbone, policy, seed) one after another and compare them.

    ``backbones`` and ``policies`` are lists or comma-separated text; ``seeds`` runs seeds
    ``seed .. seed+seeds-1``. Other keyword ``settings`` (epochs, augment, image_size, lr, ...)
    and the optional ``config`` file apply to every run. Writes comparison.{json,md,csv,png}
    into ``out`` (default ``comparisons/<dataset>``) and returns the :class:`Comparison`.

    With an Optuna ``storage`` URL, this process is one worker of the comparison: workers
    started with the same storage, ``study`` (default: ``compare-<out folder name>``) and grid
    split the cells, none run twice (:mod:`tlf.experiments.scaleout`); the comparison files
    cover the finished runs this worker can see in ``out``.
    """
    grid = _plan_grid(dataset, backbones, policies, seeds, seed, out, config, settings)
    say = log or messages.notice
    _train_grid(grid, storage, study, quiet, say)
    comparison = load_results(_finished_paths(grid, storage is not None, say), settings=grid.record())
    write_comparison(comparison, grid.out)
    return comparison


@dataclass(frozen=True)
class _Grid:
    """A comparison's cells, where they live and the settings they share."""

    dataset: str  # canonical name
    cells: list[ComparisonCell]
    seeds: list[int]
    out: Path
    shared: dict[str, Any]  # every setting but a run's identity and place, the same in every cell
    asked: set[str]  # the settings given explicitly (a run found in ``out`` must have them)

    @property
    def runs_dir(self) -> Path:
        return self.out / "runs"

    def record(self) -> dict[str, Any]:
        """The comparison's settings, as its files state them."""
        return {"dataset": self.dataset, "backbones": list(dict.fromkeys(c.backbone for c in self.cells)),
                "policies": list(dict.fromkeys(c.policy for c in self.cells)), "seeds": self.seeds, **self.shared}


def _plan_grid(dataset: str | None, backbones: str | Sequence[str] | None, policies: str | Sequence[str], seeds: int,
               seed: int, out: str | Path | None, config: str | Path | None, settings: dict[str, Any]) -> _Grid:
    """Check the arguments, resolve the shared settings (``settings`` over the ``config`` file) and
    plan every cell under canonical names, before anything runs."""

    seeds = check_value("seeds", seeds, int, Range(1))
    seed = check_value("seed", seed, int, RANGES["seed"])
    settings = {k: v for k, v in settings.items() if v is not None and k not in ("out", "name")}
    base = load_config(config, **settings)
    asked = set(settings) | (set(read_config_file(config)) if config is not None else set())
    dataset = canonical_name("datasets", dataset or base.dataset)
    seed_list = list(range(seed, seed + seeds))
    cells = plan_runs(dataset, split_names(backbones) or [base.backbone], split_names(policies), seed_list)
    shared = {k: v for k, v in base.to_dict().items() if k not in (*IDENTITY, "out", "name")}
    return _Grid(dataset, cells, seed_list, Path(out) if out is not None else Path("comparisons") / slug(dataset),
                 shared, asked)


def _train_grid(grid: _Grid, storage: str | None, study: str | None, quiet: bool, say: Callable[[str], None]) -> None:
    """Train every cell in order or, with an Optuna ``storage``, the cells this worker claims."""
    cells: Any = enumerate(grid.cells, 1)
    if storage is not None:
        cells = claimed_cells(grid.cells, storage, study or f"compare-{slug(grid.out.resolve().name)}", say,
                              lambda cell: _best_accuracy(grid.runs_dir / cell.name))
    try:
        for index, cell in cells:
            _run_cell(grid, index, cell, quiet, say)
    finally:
        getattr(cells, "close", lambda: None)()  # a claimed cell left unfinished goes back to the queue


def _finished_paths(grid: _Grid, shared_storage: bool, say: Callable[[str], None]) -> list[Path]:
    """The run directories to compare: every cell's, or with ``shared_storage`` (workers) the finished ones."""
    paths = [grid.runs_dir / cell.name for cell in grid.cells]
    if not shared_storage:
        return paths
    missing = [p.name for p in paths if run_state(p) != "finished"]
    if missing:
        say(f"{len(missing)} cell(s) not finished in {grid.runs_dir} (other workers, or other machines' folders): "
            f"{', '.join(missing)}; 'tlf report {grid.out}' once they are")
        paths = [p for p in paths if p.name not in missing]
        if not paths:
            raise TlfError("no finished cell to compare yet", hint=f"run 'tlf report {grid.out}' when the workers are done")
    return paths


def _best_accuracy(path: Path) -> float | None:
    """A finished run's best validation accuracy (None if it did not finish)."""
    summary = path / "summary.json"
    return read_json(summary).get("best_val_accuracy") if summary.is_file() else None


def _run_cell(grid: _Grid, index: int, cell: ComparisonCell, quiet: bool, say: Callable[[str], None]) -> None:
    """Train one cell: skipped when finished, resumed when interrupted, started otherwise."""
    from ..engine import api

    path = grid.runs_dir / cell.name
    state = run_state(path)
    label = f"[{index}/{len(grid.cells)}] {cell.backbone} · {cell.policy} · seed {cell.seed}"
    wanted = {**grid.shared, "dataset": grid.dataset, "backbone": cell.backbone, "policy": cell.policy, "seed": cell.seed}
    if state in ("finished", "interrupted"):
        _check_same_settings(path, wanted, grid.asked & set(wanted))
    if state == "finished":
        say(f"{label}: finished earlier, skipped")
        return
    if state == "interrupted":
        say(f"{label}: resuming {path}")
        api.train(resume=path, quiet=quiet, **{k: grid.shared[k] for k in RESUMABLE})
    else:
        if state == "empty":
            say(f"{label}: {path} has no checkpoint yet, starting it again")
            shutil.rmtree(path)
        else:
            say(f"{label}: training")
        api.train(RunConfig(**wanted), quiet=quiet, out=str(grid.runs_dir), name=cell.name)
    _release_memory()
