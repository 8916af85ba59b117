"""``tlf compare --storage URL``: several workers split one comparison's grid, no cell run twice.

The grid lives in an Optuna study on the shared storage: the worker that creates the study
enqueues one waiting trial per cell (backbone x policy x seed); every worker then claims
waiting trials one at a time. A claim is Optuna's own atomic WAITING -> RUNNING transition
(``storage.set_trial_state_values``, the step ``study.ask()`` takes), so two workers never
get the same cell. A finished cell is told COMPLETE with its best validation accuracy; a cell
whose run fails or is interrupted goes back to WAITING, and the next worker (or a rerun)
resumes it from its checkpoint when it can see the run directory.

Optuna's GridSampler is not used: with parallel workers it may run a grid point twice.
"""
from __future__ import annotations

import time
from typing import Any, Iterator, Sequence

from ..errors import TlfError
from ..tuning.storage import open_storage, require_optuna, safe_url
from .cells import ComparisonCell

CELLS_ATTR = "tlf_compare_cells"
CELL_ATTR = "tlf_cell"
WAIT_FOR_GRID = 60.0  # seconds a worker waits for the creating worker to enqueue the grid


def _study(storage_url: str, name: str, runs: Sequence[ComparisonCell]) -> tuple[Any, Any]:
    """The shared study of the grid, created and filled by exactly one worker."""
    optuna = require_optuna()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    storage = open_storage(storage_url, heartbeat=False)
    cells = [run.name for run in runs]
    try:
        study = optuna.create_study(study_name=name, storage=storage, direction="maximize")
    except optuna.exceptions.DuplicatedStudyError:
        study = optuna.load_study(study_name=name, storage=storage)
        deadline = time.monotonic() + WAIT_FOR_GRID
        while CELLS_ATTR not in study.user_attrs and time.monotonic() < deadline:
            time.sleep(0.5)
        found = study.user_attrs.get(CELLS_ATTR)
        if found is None:
            raise TlfError(f"study {name!r} in {safe_url(storage_url)} has no comparison grid",
                           hint="give this comparison its own --study name") from None
        if found != cells:
            raise TlfError(f"study {name!r} holds another comparison's grid ({len(found)} cells, e.g. {found[0]})",
                           hint="run every worker with the same backbones, policies and seeds, or use another --study")
        return study, storage
    for cell in cells:
        study.enqueue_trial({}, user_attrs={CELL_ATTR: cell})
    study.set_user_attr(CELLS_ATTR, cells)
    return study, storage


def claimed_cells(runs: Sequence[ComparisonCell], storage_url: str, name: str, say: Any,
                  value_of: Any) -> Iterator[tuple[int, ComparisonCell]]:
    """``(index, cell)`` for each cell this worker claims, until none is waiting.

    When the caller asks for the next cell, the previous one is told COMPLETE with
    ``value_of(cell)``; if the caller stops early (an error, Ctrl-C: the generator is
    closed), the cell goes back to WAITING."""
    from optuna.trial import TrialState
    study, storage = _study(storage_url, name, runs)
    study_id = storage.get_study_id_from_name(name)
    by_name = {run.name: (index, run) for index, run in enumerate(runs, 1)}
    while True:
        waiting = study.get_trials(deepcopy=False, states=(TrialState.WAITING,))
        if not waiting:
            break
        for trial in waiting:
            trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, trial.number)
            if storage.set_trial_state_values(trial_id, TrialState.RUNNING):
                break
        else:
            continue  # every one was taken by another worker meanwhile: look again
        index, run = by_name[trial.user_attrs[CELL_ATTR]]
        try:
            yield index, run
        except GeneratorExit:
            storage.set_trial_state_values(trial_id, TrialState.WAITING)
            raise
        value = value_of(run)
        storage.set_trial_state_values(trial_id, TrialState.COMPLETE if value is not None else TrialState.FAIL,
                                       None if value is None else [value])
    running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    if running:
        say(f"{len(running)} cell(s) still running on other workers: "
            f"{', '.join(t.user_attrs.get(CELL_ATTR, '?') for t in running)}")
