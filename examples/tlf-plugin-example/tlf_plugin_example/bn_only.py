"""The ``bn-only`` policy: every stage frozen except its normalization layers' affine parameters.

The pretrained convolutions stay as they are; each norm layer's scale and shift (BatchNorm
gamma/beta, LayerNorm/GroupNorm weight/bias) trains together with the new head, so the
network re-weights its pretrained features for the new data at the cost of a few
thousand parameters. Running statistics stay frozen (the stages are in eval mode).
"""
from __future__ import annotations

from tlf.models import STAGES, Classifier
from tlf.policies import FreezePolicy


class BnOnlyPolicy(FreezePolicy):
    """``transfer`` plus trainable norm-layer affine parameters in every stage."""

    name = "bn-only"
    defaults = {"lr": 1e-3, "epochs": 10}

    def __init__(self) -> None:
        super().__init__(train_bn=True)

    def frozen(self, model: Classifier) -> list[str]:
        return list(STAGES)
