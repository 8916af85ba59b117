"""What a run is built from: its plan, data, model, policy and loaders (:func:`tlf.engine.assembly.build_parts`)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..adaptive_defaults import Choice
from ..config import RunConfig
from ..data import Splits
from ..preprocessing import Preprocessing


@dataclass
class TrainingParts:
    config: RunConfig  # the plan, its image size fixed from the backbone (tlf.plan.with_backbone), its
    # epochs and head lr multiplier from the data and the policy (tlf.adaptive_defaults.adapt)
    preprocessing: Preprocessing  # from the backbone's meta at the plan's image size
    splits: Splits
    model: Any  # tlf.models.Classifier, on the device
    policy: Any  # tlf.policies.FreezePolicy, applied
    pipeline: Any  # tlf.augment.Pipeline
    train_loader: Any
    val_loader: Any
    defaults_chosen: list[Choice]  # the size-adaptive defaults applied to the plan (tlf.adaptive_defaults)
