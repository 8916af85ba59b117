"""What a run is built from: its plan, data, model, policy and loaders (:func:`tlf.engine.assembly.build_parts`)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..config import RunConfig
from ..data import Splits
from ..plan import Resolution
from ..preprocessing import Preprocessing


@dataclass
class TrainingParts:
    resolution: Resolution  # the plan resolved up to its data-dependent defaults (--lr auto: still to come)
    preprocessing: Preprocessing  # from the backbone's facts at the plan's image size
    splits: Splits
    model: Any  # tlf.models.Classifier, on the device
    policy: Any  # tlf.policies.FreezePolicy, applied
    pipeline: Any  # tlf.augment.Pipeline
    train_loader: Any
    val_loader: Any

    @property
    def config(self) -> RunConfig:
        """The settings the parts were built with (``lr`` may still be ``"auto"``)."""
        return self.resolution.config
