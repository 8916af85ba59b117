"""A run's resumable state: what ``last.pt`` holds, and how a resumed loop gets it back.

The loop's own state (model, optimizer, GradScaler, random generators, epoch, history,
best value, wall time) plus every callback's :meth:`~tlf.engine.callback.Callback.state_dict`
under the callback's name (``ema``, ``schedule``, ...), so a resumed run continues exactly
where the checkpoint was taken. A callback may not take the name of one of the loop's keys.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from .. import __version__
from ..errors import TlfError
from ..rundir import load_model_state
from .rng import rng_state, set_rng_state


def loop_state(loop: Any, epoch: int) -> dict:
    """The checkpoint of ``loop`` at the end of ``epoch`` (0-based)."""
    state = {"model": loop.model.state_dict(), "optimizer": loop.optimizer.state_dict(),
             "scaler": loop.scaler.state_dict(), "rng": rng_state(), "epoch": epoch, "step": loop.step,
             "history": loop.history, "best_acc": loop.best, "elapsed": loop.wall_seconds(),
             "config": loop.config.to_dict(), "classes": list(loop.parts.splits.classes), "tlf_version": __version__,
             "weights": "raw", "feature_cache_views": loop.cached.views if loop.cached is not None else None,
             "defaults_chosen": loop.defaults_chosen}
    callbacks = loop.callbacks.states()
    clash = sorted(set(callbacks) & set(state))
    if clash:
        raise TlfError(f"callback name(s) {', '.join(clash)} are checkpoint keys of the loop",
                       hint="rename the callback (its Callback.name)")
    return {**state, **callbacks}


def load_loop_state(loop: Any, state: dict, path: Path) -> None:
    """Put the state of checkpoint ``path`` back into ``loop`` (and its callbacks) before it trains
    on; a checkpoint that does not fit the run's model or classes is one line saying what differs."""
    for epoch in range(state["epoch"] + 1):  # the policy's changes (gradual unfreezing) up to that epoch
        loop.policy.on_epoch_start(loop.model, epoch, loop.optimizer)
    load_model_state(loop.model, state, path, list(loop.parts.splits.classes))
    loop.optimizer.load_state_dict(state["optimizer"])
    loop.scaler.load_state_dict(state["scaler"])
    loop.callbacks.load_states(state)
    set_rng_state(state["rng"])
    loop.start_epoch = state["epoch"] + 1
    loop.history = list(state["history"])
    loop.best = float(state["best_acc"])
    loop.earlier_seconds = float(state["elapsed"])
    loop.resumed_cache_views = state.get("feature_cache_views")
    loop.defaults_chosen = state.get("defaults_chosen", loop.defaults_chosen)
