"""A run's plan: flags + config file + Python arguments resolved once, checked, immutable.

Two types: :class:`~tlf.config.RunConfig` is what the user asked (``None`` = "the default",
``lr`` may be ``"auto"``); :class:`RunPlan` is what the engine runs: the same settings with
every default resolved (:data:`RESOLVED` set, ``lr`` a number). The steps, in order:

1. :func:`plan_run` / :func:`resolve`: defaults <- file <- settings (or a run's own
   config.yaml plus the :data:`~tlf.config.RESUMABLE` settings when resuming), every value
   checked, plugin names as the registry spells them, the policy's lr and augment, the
   worker count;
2. :func:`with_backbone`: the image size from the backbone's metadata, once the model is built;
3. :func:`tlf.adaptive_defaults.adapt`: epochs and head lr multiplier from the training
   loader's size (the choices and why go to summary.json);
4. ``--lr auto``: the lr range test's suggestion (the ``lr-finder`` callback), then
   :func:`complete` makes the :class:`RunPlan` the loop trains on.

That plan is what ``config.yaml`` stores and :func:`tlf.rundir.load_run` gives back.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .config import RESUMABLE, RunConfig, file_config
from .errors import TlfError
from .plan_checks import Problems, check_stages, folder_dataset
from .registry import get_registry
from .setting_checks import check_out_dir, check_run_name


# the settings whose None (or "auto") in a RunConfig a plan resolves
RESOLVED = ("augment", "epochs", "image_size", "lr", "head_lr_scale", "workers")


@dataclass(frozen=True, eq=False)
class RunPlan(RunConfig):
    """What the engine runs: a :class:`RunConfig` with every default resolved (no :data:`RESOLVED`
    setting None, the lr a number); made by :func:`complete`."""

    def __post_init__(self) -> None:
        open_ = [name for name in RESOLVED if getattr(self, name) is None]
        if open_ or not isinstance(self.lr, float):
            raise ValueError(f"a run plan needs every default resolved; open: {', '.join(open_) or 'lr=' + repr(self.lr)}")


def complete(config: RunConfig) -> RunPlan:
    """``config``, fully resolved, as the plan the engine runs."""
    return config if isinstance(config, RunPlan) else RunPlan(**{f.name: getattr(config, f.name)
                                                                 for f in dataclasses.fields(RunConfig)})


def canonical_name(kind: str, text: str) -> str:
    """The registered name of ``text`` (aliases followed, ``name:ARG`` kept); a policy as its
    own ``.name`` (``partial`` -> ``partial:conv5``)."""
    registry = get_registry()
    if kind == "policies":
        from .policies import build_policy
        return build_policy(text).name
    spec, argument = registry.resolve(kind, text)
    return spec.name if argument is None else f"{spec.name}:{argument}"


def canonical_augment(text: str) -> str:
    """``"basic + flip"`` -> each part under its registered name, joined by ``+``."""
    from .augment_chain import parse_parts
    return "+".join(canonical_name("augmentations", part) for part in parse_parts(text))


def canonical_callbacks(texts: tuple[str, ...]) -> tuple[str, ...]:
    """Each ``--callback NAME[:ARG]`` under its registered name, its argument parsed now, so an
    unknown name or a bad argument is a one-line error before any work."""
    registry = get_registry()
    for text in texts:
        spec, argument = registry.resolve("callbacks", text)
        spec.argument_value(argument)
    return tuple(canonical_name("callbacks", text) for text in texts)


def default_workers(device: str) -> int:
    """DataLoader workers for ``--device`` (auto: CUDA when available): all CPUs up to 16 for a GPU,
    up to 4 leaving one free on the CPU."""
    import torch

    from .resources import usable_cpus
    on_gpu = device == "cuda" or (device == "auto" and torch.cuda.is_available())
    cpus = usable_cpus()
    return min(cpus, 16) if on_gpu else max(0, min(cpus - 1, 4))


def resolve(config: RunConfig, new_run: bool = False) -> RunConfig:
    """``config`` checked, with canonical plugin names and every default applied but the image size
    and the defaults that depend on the data (epochs, head_lr_scale: :mod:`tlf.adaptive_defaults`).

    Everything that needs no data is checked first and every problem is reported at once
    (:class:`~tlf.plan_checks.Problems`): the settings, the plugin names, the policy's stages on the
    backbone, the loggers and, for a ``new_run``, ``--out`` and ``--name``."""
    from .policies import build_policy
    from .tracking import check_loggers

    problems = Problems()
    checked = problems.attempt(config.checked)
    given = checked or config  # the raw values, when some setting failed its check

    def named(kind: str, value: Any) -> str | None:
        return problems.attempt(canonical_name, kind, value) if isinstance(value, str) and value.strip() else None

    dataset = named("datasets", problems.attempt(folder_dataset, given.dataset) if isinstance(given.dataset, str) else None)
    backbone = named("backbones", given.backbone)
    task = named("tasks", given.task)
    callbacks = problems.attempt(canonical_callbacks, tuple(given.callbacks or ()))
    policy = problems.attempt(build_policy, given.policy, given.train_bn) if isinstance(given.policy, str) else None
    augment = given.augment or (str(policy.defaults["augment"]) if policy is not None else None)
    if isinstance(augment, str) and augment != "none":
        augment = problems.attempt(canonical_augment, augment)
    problems.attempt(check_loggers, given.loggers)
    if policy is not None and backbone is not None:
        problems.attempt(check_stages, policy, backbone)
    if new_run:
        problems.attempt(check_out_dir, given.out)
        if given.name is not None:
            problems.attempt(check_run_name, given.name)
    problems.raise_found()
    resolved = dataclasses.replace(
        checked, dataset=dataset, backbone=backbone, policy=policy.name, augment=augment, task=task,
        callbacks=callbacks, lr=checked.lr or float(policy.defaults["lr"]),
        workers=default_workers(checked.device) if checked.workers is None else checked.workers,
    )
    return resolved.checked()  # relations between the resolved values (warm-up within the epochs)


def with_backbone(plan: RunConfig, meta: Any) -> RunConfig:
    """The plan with its image size fixed: the one asked for, else the backbone's (``meta.image_size``)."""
    return plan if plan.image_size is not None else dataclasses.replace(plan, image_size=meta.image_size).checked()


def resume_plan(run_dir: str | Path, settings: dict[str, Any]) -> RunConfig:
    """The plan of an earlier run, with only :data:`~tlf.config.RESUMABLE` settings changed."""
    from .rundir import read_run_config

    changed = sorted(k for k, v in settings.items() if v is not None and k not in RESUMABLE)
    if changed:
        raise TlfError(f"cannot change {', '.join(changed)} when resuming",
                       hint=f"resume with the run's own settings (only {', '.join(RESUMABLE)} may change), "
                            f"or start a new run")
    planned = read_run_config(run_dir)
    check_more_epochs(Path(run_dir), planned.epochs, settings.get("epochs"))
    return resolve(planned.merged(settings))


def check_more_epochs(run_dir: Path, planned: int, wanted: int | None) -> None:
    """``--resume RUN --epochs N`` may plan more epochs than the run had, never fewer."""
    if wanted is None or wanted >= planned:
        return
    from .rundir import load_checkpoint
    done = load_checkpoint(run_dir)["epoch"] + 1 if (run_dir / "last.pt").is_file() else 0
    raise TlfError(f"--epochs {wanted} is fewer than the {planned} the run planned (it is at epoch {done} of {planned})",
                   hint=f"resume with --epochs {planned} or more, or without --epochs")


def plan_run(config: RunConfig | str | Path | None = None, settings: dict[str, Any] | None = None,
             resume: str | Path | None = None) -> RunConfig:
    """The one step from what the user gave to a run's plan.

    ``config``: a RunConfig or a YAML/JSON file; ``settings`` (flags, keyword arguments)
    override it. With ``resume`` (a run directory) the run's own config.yaml is the base.
    """
    settings = {k: v for k, v in (settings or {}).items() if v is not None}
    if resume is not None:
        if config is not None:
            raise TlfError("--resume continues a run with its own config.yaml; --config cannot be combined with it",
                           hint="drop --config, or start a new run with it")
        return resume_plan(resume, settings)
    base = config if isinstance(config, RunConfig) else file_config(config)
    return resolve(base.merged(settings), new_run=True)  # a new run's directory must be creatable
