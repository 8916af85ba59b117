"""RunConfig: every setting of a training run, resolved as defaults <- file <- flags.

The resolved config is saved as ``config.yaml`` in the run directory, and is all that
``tlf train --resume`` needs to repeat the run.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from .errors import TlfError

OPTIMIZERS = ("adamw", "sgd")
PRECISIONS = ("auto", "bf16", "fp16", "fp32")
DEVICES = ("auto", "cuda", "cpu")
FROZEN_ENGINES = ("auto", "torch", "onnxruntime")


@dataclass
class RunConfig:
    """Settings of one training run. ``None`` means "the policy's or backbone's default"."""

    dataset: str = "synthetic"
    backbone: str = "efficientnet_lite0"
    policy: str = "transfer"
    augment: str | None = None  # policy default: none for transfer, basic otherwise
    epochs: int | None = None  # policy default
    batch_size: int = 64
    image_size: int | None = None  # backbone default
    optimizer: str = "adamw"
    lr: float | None = None  # policy default
    weight_decay: float = 0.05
    momentum: float = 0.9  # SGD only
    warmup_epochs: float = 1.0
    label_smoothing: float = 0.1
    grad_clip: float | None = None
    seed: int = 0
    device: str = "auto"
    precision: str = "auto"
    compile: bool = False
    channels_last: bool = True  # NHWC memory format: faster on GPUs and for most backbones on CPUs
    workers: int | None = None  # auto: from the CPU count
    cache: str = "auto"  # decoded-image cache: auto | ram | disk | off
    feature_cache: str = "auto"  # frozen-prefix features: auto | off | number of augmented views
    frozen_engine: str = "auto"  # what runs the cached frozen pass: auto | torch | onnxruntime
    head: str = "linear"
    dropout: float = 0.2
    train_bn: bool = False
    weights: str | None = None  # local pretrained weights file
    data_dir: str | None = None
    download: bool = True
    val_split: float = 0.2
    strict: bool = False
    patience: int | None = None  # early stopping on val accuracy
    out: str = "runs"
    name: str | None = None  # run directory name (default: dataset-backbone-policy-timestamp)

    def validate(self) -> RunConfig:
        """Raise TlfError for values no run can use; return self."""
        choices = {"optimizer": OPTIMIZERS, "precision": PRECISIONS, "device": DEVICES, "frozen_engine": FROZEN_ENGINES}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise TlfError(f"invalid {name} {getattr(self, name)!r}", hint=f"choose one of: {', '.join(allowed)}")
        positive = {"batch_size": self.batch_size, "epochs": self.epochs, "lr": self.lr, "image_size": self.image_size}
        for name, value in positive.items():
            if value is not None and value <= 0:
                raise TlfError(f"{name} must be positive, got {value}", hint=f"pass a value above 0 for --{name.replace('_', '-')}")
        if not 0 < self.val_split < 1:
            raise TlfError(f"val_split must be between 0 and 1, got {self.val_split}", hint="e.g. --val-split 0.2")
        if self.cache not in ("auto", "ram", "disk", "off"):
            raise TlfError(f"invalid cache {self.cache!r}", hint="choose one of: auto, ram, disk, off")
        if self.feature_cache not in ("auto", "off") and not str(self.feature_cache).isdigit():
            raise TlfError(f"invalid feature_cache {self.feature_cache!r}", hint="choose auto, off, or a number of views")
        return self

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "config") -> RunConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            from .registry import suggest
            hints = [f"{u!r} (did you mean {suggest(u, sorted(known))[0]!r}?)" if suggest(u, sorted(known)) else repr(u)
                     for u in unknown]
            raise TlfError(f"unknown setting(s) in {source}: {', '.join(hints)}",
                           hint="'tlf train --help' lists the settings")
        return cls(**data)

    def merged(self, overrides: dict[str, Any]) -> RunConfig:
        """A copy with the non-None ``overrides`` applied."""
        return dataclasses.replace(self, **{k: v for k, v in overrides.items() if v is not None})


def read_config_file(path: str | Path) -> dict[str, Any]:
    """Settings from a YAML or JSON file (a mapping of setting -> value)."""
    path = Path(path)
    if not path.is_file():
        raise TlfError(f"config file {path} does not exist", hint="pass the path of a YAML or JSON file to --config")
    text = path.read_text()
    try:
        if path.suffix == ".json":
            data = json.loads(text)
        else:
            import yaml
            data = yaml.safe_load(text) or {}
    except Exception as exc:
        raise TlfError(f"cannot parse {path}: {exc}", hint="fix the file's syntax (YAML or JSON)") from None
    if not isinstance(data, dict):
        raise TlfError(f"{path} must hold a mapping of settings, not {type(data).__name__}",
                       hint="write one 'setting: value' per line")
    return data


def load_config(file: str | Path | None = None, **overrides: Any) -> RunConfig:
    """Defaults <- file <- overrides (flags), validated."""
    config = RunConfig()
    if file is not None:
        config = RunConfig.from_dict({**config.to_dict(), **read_config_file(file)}, source=str(file))
    return config.merged(overrides).validate()
