"""A finished (or interrupted) run read back: its plan, classes, preprocessing and model."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import RunConfig
from ..errors import TlfError
from ..preprocessing import Preprocessing
from ..rundir import PREPROCESSING_FILE, load_checkpoint, load_model_state, read_json, read_run_config
from .classifier import build_model


@dataclass
class TrainedModel:
    """A finished (or interrupted) run, ready for evaluation or export."""

    directory: Path
    config: RunConfig  # the run's plan
    classes: list[str]
    model: Any  # tlf.models.Classifier in eval mode
    meta: Any  # tlf.models.BackboneMeta
    preprocessing: Preprocessing
    summary: dict
    checkpoint: str


def load_run(run_dir: str | Path, which: str = "best") -> TrainedModel:
    """Rebuild a run's model with its ``best`` (or ``last``) weights, on the CPU, in eval mode."""
    run_dir = Path(run_dir)
    config = read_run_config(run_dir)
    state = load_checkpoint(run_dir, which)
    classes = list(state["classes"])
    # dropout is inactive in eval mode: a config.yaml that leaves it unset (written by hand) loads alike
    model = build_model(config.backbone, len(classes), pretrained=False, head=config.head,
                        dropout=config.dropout or 0.0, image_size=config.image_size, pooling=config.pooling)
    load_model_state(model, state, run_dir / f"{which}.pt")
    model.eval()
    summary_path = run_dir / "summary.json"
    summary = read_json(summary_path) if summary_path.is_file() else {}
    meta = model.backbone.meta
    return TrainedModel(run_dir, config, classes, model, meta, read_preprocessing(run_dir, meta, config.image_size),
                     summary, which)


def read_preprocessing(run_dir: Path, meta: Any, image_size: int | None) -> Preprocessing:
    """The run's preprocessing.json; runs made before it existed: from the backbone's meta."""
    path = Path(run_dir) / PREPROCESSING_FILE
    if not path.is_file():
        return Preprocessing.from_meta(meta, image_size)
    try:
        return Preprocessing.from_dict(read_json(path), source=str(path))
    except ValueError as exc:
        raise TlfError(f"{path} is damaged: {exc}", hint="delete it; tlf then derives it from the backbone") from None
