"""Built-in loggers: TensorBoard, MLflow and Weights & Biases. Registration only: each factory imports its
implementation (and the tracker's package) when a run asks for it with ``--log``."""
from __future__ import annotations

from typing import Any, Callable

from tlf.hookspecs import hookimpl
from tlf.specs import LoggerSpec


def _tensorboard(argument: None, request: Any) -> Any:
    from .tensorboard import TensorBoardLogger
    return TensorBoardLogger(request)


def _mlflow(argument: str | None, request: Any) -> Any:
    from .mlflow import MlflowLogger
    return MlflowLogger(request, argument)


def _wandb(argument: str | None, request: Any) -> Any:
    from .wandb import WandbLogger
    return WandbLogger(request, argument)


@hookimpl
def tlf_register_loggers(register: Callable[[LoggerSpec], None]) -> None:
    register(LoggerSpec(
        name="tensorboard", factory=_tensorboard, aliases=("tb",),
        description="TensorBoard event files in the run directory: scalars per step and epoch, curves, hparams",
        modules=("tensorboard",), install="'tlf[tensorboard]'"))
    register(LoggerSpec(
        name="mlflow", factory=_mlflow, argument="TRACKING_URI",
        description="MLflow run: params, tags, per-epoch metrics, artifacts (default store: OUT/mlflow.db)",
        modules=("mlflow", "sqlalchemy", "alembic"), install="'tlf[mlflow]'"))
    register(LoggerSpec(
        name="wandb", factory=_wandb, argument="PROJECT",
        description="Weights & Biases run: config, per-step and per-epoch metrics, confusion matrices, files "
                    "(WANDB_MODE=offline: no account needed)",
        modules=("wandb",), install="'tlf[wandb]'"))
