"""Hyperparameter search on Optuna: search spaces, study storages, ``tlf.tune``."""
from .runner import tune

__all__ = ["tune"]
