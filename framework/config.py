"""RunConfig: every setting of a training run, as defaults <- file <- flags.

A RunConfig is immutable. :mod:`tlf.plan` resolves one into the run's plan, a :class:`tlf.plan.RunPlan`
(every default applied and typed resolved, names canonical); that plan is saved as ``config.yaml`` in the
run directory, and is all that ``tlf train --resume`` needs to repeat the run.
"""
from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from .errors import TlfError

OPTIMIZERS = ("adamw", "sgd")
SCHEDULES = ("cosine", "onecycle", "step", "constant", "plateau")  # tlf.engine.schedules.Schedule's shapes
PRECISIONS = ("auto", "bf16", "fp16", "fp32")
DEVICES = ("auto", "cuda", "mps", "cpu")
FROZEN_ENGINES = ("auto", "torch", "onnxruntime", "onnxruntime-int8")
CACHES = ("auto", "ram", "disk", "off")
SAMPLERS = ("shuffle", "balanced")
CLASS_WEIGHTS = ("none", "auto", "effective")  # or a file
POOLINGS = ("cls", "mean", "cls+mean")  # how a columnar backbone's tokens are pooled (tlf.models.heads.TokenPool)
# the settings a run may be resumed with although they differ from its config.yaml
# (epochs: only more than planned, see tlf.engine.api.check_more_epochs)
RESUMABLE = ("device", "precision", "workers", "compile", "cache", "batch_size", "epochs", "loggers", "frozen_engine")
# the defaults that depend on the task: these values unless the run's task states its own
# (tlf.task.Task.defaults); resolved once the task is known (tlf.plan.Resolution.with_task)
TASK_DEFAULTS: dict[str, float] = {"label_smoothing": 0.1, "dropout": 0.2}


@dataclass(frozen=True)
class RunConfig:
    """Settings of one training run. ``None`` means "the policy's or backbone's default"."""

    dataset: str = "synthetic"
    backbone: str = "efficientnet_lite0"
    policy: str = "transfer"
    augment: str | None = None  # the policy's default (none for transfer, basic otherwise) or the task's
    epochs: int | None = None  # policy default, raised on small datasets (tlf.adaptive_defaults)
    batch_size: int = 64
    image_size: int | None = None  # backbone default
    optimizer: str = "adamw"
    lr: float | str | None = None  # policy default; "auto": the lr range test's suggestion
    head_lr_scale: float | None = None  # the new head's lr over the pretrained stages' (policy default: init 10, partial 3)
    weight_decay: float = 0.05
    momentum: float = 0.9  # SGD only
    warmup_epochs: float = 1.0
    schedule: str = "cosine"  # lr after the warm-up: cosine | onecycle | step | constant | plateau
    accumulate: int = 1  # micro-batches per optimizer step (effective batch = batch_size * accumulate)
    class_weights: str = "none"  # loss weights per class: none | auto | effective | FILE (JSON/YAML)
    sampler: str = "shuffle"  # shuffle | balanced (classes drawn equally often)
    ema: float | None = None  # decay of an exponential moving average of the weights, e.g. 0.999
    label_smoothing: float | None = None  # the task's default (TASK_DEFAULTS; multi-label states its own)
    grad_clip: float | None = None
    seed: int = 0
    device: str = "auto"
    precision: str = "auto"
    compile: bool = False
    channels_last: bool = True  # NHWC memory format: faster on GPUs and for most backbones on CPUs
    workers: int | None = None  # auto: from the CPU count
    cache: str = "auto"  # decoded-image cache: auto | ram | disk | off
    feature_cache: str = "auto"  # frozen-prefix features: auto | off | number of augmented views
    frozen_engine: str = "auto"  # what runs the cached frozen pass: auto | torch | onnxruntime | onnxruntime-int8
    head: str = "linear"
    pooling: str | None = None  # columnar backbones (ViTs): cls | mean | cls+mean; None: the backbone's recipe
    dropout: float | None = None  # before the head; the task's default (TASK_DEFAULTS; multi-label states its own)
    train_bn: bool = False
    pretrained: bool = True  # False: random initialisation, whatever the policy
    weights: str | None = None  # local pretrained weights file
    data_dir: str | None = None
    download: bool = True
    val_split: float = 0.2
    test_split: bool = True  # score the held-out test split at the end, when the data has one
    strict: bool = False
    exclude: str | None = None  # file of images left out of both splits (tlf.data.edits)
    relabel: str | None = None  # file of 'path,new_label' lines (tlf.data.edits)
    patience: int | None = None  # early stopping on val accuracy
    out: str = "runs"
    name: str | None = None  # run directory name (default: dataset-backbone-policy-timestamp)
    loggers: str | None = None  # --log: comma-separated (tensorboard, mlflow[:URI], ...); None: the run directory only
    callbacks: tuple[str, ...] = ()  # --callback NAME[:ARG] (repeatable): training-loop callback plugins
    task: str | None = None  # what the run predicts: a task plugin (tlf.task); None: from the data (tlf.task_choice)

    def checked(self) -> RunConfig:
        """A copy with every value checked (type, range, choices; floats as float); bad values
        raise :class:`TlfError` naming the setting and the fix."""
        from .setting_checks import RANGES, check_choice, check_value
        hints = typing.get_type_hints(type(self))
        given = self.to_dict()
        if isinstance(given["feature_cache"], int) and not isinstance(given["feature_cache"], bool):
            given["feature_cache"] = str(given["feature_cache"])  # a number of views, as YAML reads it
        if isinstance(given["lr"], str) and given["lr"] != "auto":
            try:
                given["lr"] = float(given["lr"])
            except ValueError:
                raise TlfError(f"invalid lr {given['lr']!r}",
                               hint="pass a number above 0, or auto (the lr range test)") from None
        values = {f.name: check_value(f.name, given[f.name], hints[f.name],
                                      None if given[f.name] == "auto" else RANGES.get(f.name)) for f in fields(self)}
        choices = {"optimizer": OPTIMIZERS, "precision": PRECISIONS, "device": DEVICES, "cache": CACHES,
                   "schedule": SCHEDULES, "sampler": SAMPLERS,
                   "frozen_engine": FROZEN_ENGINES, "pooling": POOLINGS}
        for name, allowed in choices.items():
            if values[name] is not None:  # None: the default (pooling: the backbone's)
                check_choice(name, values[name], allowed)
        for name in ("dataset", "backbone", "policy", "augment", "task"):
            if values[name] is not None and not values[name].strip():
                raise TlfError(f"{name} is empty", hint=f"name one with --{name}, or leave it out for the default")
        if values["feature_cache"] not in ("auto", "off") and not (values["feature_cache"].isdigit()
                                                                   and int(values["feature_cache"]) > 0):
            raise TlfError(f"invalid feature_cache {values['feature_cache']!r}",
                           hint="choose auto, off, or a number of views (1 or more)")
        if values["epochs"] is not None and values["warmup_epochs"] > values["epochs"]:
            raise TlfError(f"warmup_epochs {values['warmup_epochs']:g} is longer than the run's {values['epochs']} "
                           f"epoch(s)", hint="pass a --warmup-epochs no larger than --epochs")
        if values["class_weights"] not in CLASS_WEIGHTS and not Path(values["class_weights"]).is_file():
            raise TlfError(f"invalid class_weights {values['class_weights']!r}: not a choice and no such file",
                           hint=f"use {', '.join(CLASS_WEIGHTS)} or the path of a JSON/YAML file 'class: weight'")
        return dataclasses.replace(self, **values)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "config") -> RunConfig:
        """Settings from a mapping (a config file, a run's config.yaml), unknown names refused."""
        _refuse_unknown(data, source)
        return cls(**data)

    def merged(self, overrides: dict[str, Any], source: str = "settings") -> RunConfig:
        """A copy with the non-None ``overrides`` applied (unchecked: call :meth:`checked`)."""
        _refuse_unknown(overrides, source)
        return dataclasses.replace(self, **{k: v for k, v in overrides.items() if v is not None})


def _refuse_unknown(data: dict[str, Any], source: str) -> None:
    known = sorted(f.name for f in fields(RunConfig))
    unknown = sorted(set(data) - set(known))
    if unknown:
        from .registry import suggest
        hints = [f"{u!r} (did you mean {suggest(u, known)[0]!r}?)" if suggest(u, known) else repr(u)
                 for u in unknown]
        raise TlfError(f"unknown setting(s) in {source}: {', '.join(hints)}",
                       hint="'tlf train --help' lists the settings")


def read_config_file(path: str | Path) -> dict[str, Any]:
    """Settings from a YAML or JSON file (a mapping of setting -> value), read within the bounds of
    :mod:`tlf.config_files`."""
    from .config_files import read_structured
    path = Path(path)
    if not path.is_file():
        raise TlfError(f"config file {path} does not exist", hint="pass the path of a YAML or JSON file to --config")
    data = read_structured(path, "config file", "fix the file's syntax (YAML or JSON)")
    data = {} if data is None else data
    if not isinstance(data, dict):
        raise TlfError(f"{path} must hold a mapping of settings, not {type(data).__name__}",
                       hint="write one 'setting: value' per line")
    return data


def file_config(file: str | Path | None = None) -> RunConfig:
    """Defaults <- file, unchecked (unknown setting names refused)."""
    config = RunConfig()
    if file is None:
        return config
    return RunConfig.from_dict({**config.to_dict(), **read_config_file(file)}, source=str(file))


def load_config(file: str | Path | None = None, **overrides: Any) -> RunConfig:
    """Defaults <- file <- overrides (flags), checked."""
    return file_config(file).merged(overrides).checked()
