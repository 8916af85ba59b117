"""A run's plan: flags + config file + Python arguments resolved once, checked, immutable.

Two types: :class:`~tlf.config.RunConfig` is what the user asked (``None`` = "the default",
``lr`` may be ``"auto"``); :class:`RunPlan` is what the engine runs: the same settings with
every default resolved, typed so (``lr: float``, ``epochs: int``, ``image_size: int``: the
:data:`RESOLVED` settings). One resolution, whose steps run in this order, all before the first
epoch, each taking what it needs from the one before (nothing travels back up):

1. :func:`plan_run` / :func:`resolve`: defaults <- file <- settings (or a run's own
   config.yaml plus the :data:`~tlf.config.RESUMABLE` settings when resuming), every value
   checked, plugin names as the registry spells them, the policy's lr, the worker count;
2. :meth:`Resolution.begin`: the image size and preprocessing from the backbone's spec facts
   (:meth:`tlf.specs.BackboneSpec.preprocessing_facts`), before the data and the model;
   :meth:`Resolution.with_backbone` checks the built model against them (a third-party backbone
   whose spec states none: they come from its built meta, the one fallback);
   :meth:`Resolution.with_task`: the task, ``--task`` checked against the data or the data's own
   (label sets: ``multi-label``), once the dataset is read, and the defaults the task states
   (:attr:`tlf.task.Task.defaults`: label smoothing, dropout and, for a policy that augments,
   the augmentation now; the minimum steps in step 4);
3. :meth:`Resolution.with_micro_batch`: the micro-batch that fits in memory (when one is needed);
4. :meth:`Resolution.with_data`: epochs and head lr multiplier from the training set's size
   and the task's minimum steps (:mod:`tlf.adaptive_defaults`);
5. :meth:`Resolution.with_lr`: ``--lr auto``, the lr range test's suggestion (run by the engine's
   lr finder on the run's prepared batches), then :meth:`Resolution.complete`: the :class:`RunPlan`.

Each choice is recorded with why (:class:`~tlf.adaptive_defaults.Choice`, summary.json's
``defaults_chosen``). That plan is what ``config.yaml`` stores and :func:`tlf.rundir.load_run` gives back.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from .adaptive_defaults import Choice, adapt
from .config import RESUMABLE, TASK_DEFAULTS, RunConfig, file_config
from .errors import TlfError
from .plan_checks import Problems, check_model, folder_dataset
from .preprocessing import BackboneFacts, Preprocessing
from .registry import get_registry
from .setting_checks import check_out_dir, check_run_name
from .task import TaskDefault, TaskRequest
from .task_choice import choose_task


@dataclass(frozen=True, eq=False)
class RunPlan(RunConfig):
    """What the engine runs: a :class:`RunConfig` with every default resolved; made by :func:`complete`.
    The settings a plan resolves are declared again here with their resolved types (keyword-only
    and without a default: a plan states each)."""

    augment: str = field(kw_only=True)
    epochs: int = field(kw_only=True)
    image_size: int = field(kw_only=True)
    lr: float = field(kw_only=True)
    head_lr_scale: float = field(kw_only=True)
    workers: int = field(kw_only=True)
    task: str = field(kw_only=True)
    label_smoothing: float = field(kw_only=True)
    dropout: float = field(kw_only=True)

    def __post_init__(self) -> None:
        open_ = [name for name in RESOLVED if getattr(self, name) is None]
        if open_ or not isinstance(self.lr, float):
            raise ValueError(f"a run plan needs every default resolved; open: {', '.join(open_) or 'lr=' + repr(self.lr)}")


# the settings whose None (or "auto") in a RunConfig a plan resolves: those RunPlan types anew
RESOLVED = tuple(RunPlan.__annotations__)


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
    augment = given.augment or None  # unset: the task's or the policy's, once the task is known (Resolution.with_task)
    if isinstance(augment, str) and augment != "none":
        augment = problems.attempt(canonical_augment, augment)
    problems.attempt(check_loggers, given.loggers)
    if policy is not None and backbone is not None:
        shape = (checked.head, checked.pooling, checked.image_size) if checked is not None else ()  # once valid
        problems.attempt(check_model, policy, backbone, *shape)
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


def backbone_facts(backbone: str) -> BackboneFacts | None:
    """The preprocessing facts the spec of ``backbone`` states, without building it; None when it states none."""
    spec, argument = get_registry().resolve("backbones", backbone)
    facts = spec.preprocessing_facts(argument)
    if facts is not None and not isinstance(facts, BackboneFacts):
        raise TlfError(f"backbone plugin {spec.name!r} from package {spec.plugin} stated its facts as "
                       f"{type(facts).__name__}, expected tlf.preprocessing.BackboneFacts",
                       hint=f"a bug in package {spec.plugin}: report it to its authors, or uninstall it")
    return facts


@dataclass(frozen=True)
class Resolution:
    """A run's plan part way through its resolution (the module's steps 2 to 5): the settings so far,
    the backbone's preprocessing facts, and the defaults chosen, each with why. Each step returns the
    next resolution; :meth:`complete` makes the :class:`RunPlan`."""

    config: RunConfig
    facts: BackboneFacts | None = None  # None until known: a backbone whose spec states none, until built
    chosen: tuple[Choice, ...] = ()
    task_defaults: Mapping[str, TaskDefault] = field(default_factory=dict)  # the task's (with_task)

    @classmethod
    def begin(cls, plan: RunConfig) -> Resolution:
        """Step 2: the image size and preprocessing from the backbone's spec (``plan``: :func:`plan_run`'s),
        before any data is read or model built."""
        facts = backbone_facts(plan.backbone)
        if facts is None or plan.image_size is not None:
            return cls(plan, facts)
        why = f"{plan.backbone}'s pretrained recipe, stated by its plugin"
        return cls(plan, facts)._choose("image_size", facts.image_size, facts.image_size, why)

    def _choose(self, setting: str, value: Any, default: Any, why: str, **changes: Any) -> Resolution:
        """The next resolution: ``setting`` (and ``changes``) set, the choice recorded."""
        config = dataclasses.replace(self.config, **{setting: value}, **changes).checked()
        return dataclasses.replace(self, config=config, chosen=(*self.chosen, Choice(setting, value, default, why)))

    def with_backbone(self, meta: BackboneFacts) -> Resolution:
        """The built backbone's :class:`~tlf.models.BackboneMeta` must state the spec's facts; a backbone
        whose spec states none takes them (and the image size, unless given) from it: the fallback."""
        built = meta.preprocessing_facts()
        if self.facts is None:
            known = dataclasses.replace(self, facts=built)
            if self.config.image_size is not None:
                return known
            why = f"{self.config.backbone}'s built model: its plugin states no facts before building it"
            return known._choose("image_size", built.image_size, built.image_size, why)
        if built != self.facts:
            spec, _ = get_registry().resolve("backbones", self.config.backbone)
            raise TlfError(f"backbone plugin {spec.name!r} from package {spec.plugin} built {self.config.backbone} "
                           f"with preprocessing {built}, but its spec states {self.facts}",
                           hint=f"a bug in package {spec.plugin}: its meta must take the facts from its spec's")
        return self

    def preprocessing(self) -> Preprocessing:
        """The one preprocessing contract of the run: the backbone's facts at the plan's image size."""
        if self.facts is None:
            raise RuntimeError("the preprocessing is known once the backbone's facts are (with_backbone)")
        return Preprocessing.from_meta(self.facts, self.config.image_size)

    def with_task(self, splits: Any, policy_defaults: Mapping[str, Any]) -> Resolution:
        """The task: ``--task``, checked against the data, or the data's (:func:`tlf.task_choice.choose_task`);
        and the defaults it states (:attr:`tlf.task.Task.defaults`), kept for :meth:`with_data`; an unset
        ``--augment`` from ``policy_defaults`` (the policy's) or the task's."""
        config, choice = choose_task(self.config, splits)
        task = get_registry().create("tasks", config.task, TaskRequest(splits.classes))
        known = dataclasses.replace(self, config=config, chosen=(*self.chosen, *(() if choice is None else (choice,))),
                                    task_defaults=dict(task.defaults))
        return known._with_task_settings()._with_augment(str(policy_defaults["augment"]))

    def _with_augment(self, usual: str) -> Resolution:
        """An unset ``--augment``: the policy's default (``usual``); where the policy augments (it trains
        the backbone), the augmentation the task states instead, when it states one."""
        if self.config.augment is not None:
            return self
        stated = self.task_defaults.get("augment")
        if stated is None or usual == "none":
            return dataclasses.replace(self, config=dataclasses.replace(self.config, augment=usual))
        return self._choose("augment", canonical_augment(str(stated.value)), usual, f"{self.config.task}: {stated.why}")

    def _with_task_settings(self) -> Resolution:
        """The unset :data:`~tlf.config.TASK_DEFAULTS` settings: the task's value (recorded with its why)
        where it states one, else the usual."""
        resolution = self
        for setting, usual in TASK_DEFAULTS.items():
            if getattr(self.config, setting) is not None:
                continue
            stated = self.task_defaults.get(setting)
            if stated is None:
                usual_config = dataclasses.replace(resolution.config, **{setting: usual})
                resolution = dataclasses.replace(resolution, config=usual_config)
            else:
                resolution = resolution._choose(setting, stated.value, usual, f"{self.config.task}: {stated.why}")
        return resolution

    def with_micro_batch(self, fitted: tuple[RunConfig, Choice | None]) -> Resolution:
        """Step 3: the batch size and accumulation that fit in memory (:func:`tlf.engine.micro_batch.fit_micro_batch`)."""
        config, choice = fitted
        if choice is None:
            return self
        return self._choose(choice.setting, choice.value, choice.policy_default, choice.why,
                            accumulate=config.accumulate)

    def with_data(self, policy_defaults: dict[str, Any], steps_per_epoch: int) -> Resolution:
        """Step 4: the unset epochs and head lr multiplier from ``steps_per_epoch`` (:mod:`tlf.adaptive_defaults`)."""
        steps = self.task_defaults.get("min_steps")
        task_steps = None if steps is None else (int(steps.value), f"{self.config.task}: {steps.why}")
        config, choices = adapt(self.config, policy_defaults, steps_per_epoch, task_steps)
        return dataclasses.replace(self, config=config, chosen=(*self.chosen, *choices))

    def with_lr(self, policy_defaults: dict[str, Any], range_test: Callable[[], tuple[float, str]]) -> Resolution:
        """Step 5: ``--lr auto`` becomes ``range_test()``'s suggested lr (and the rule it followed); it is
        run only then, the last step, as it trains on the run's prepared batches."""
        if self.config.lr != "auto":
            return self
        lr, rule = range_test()
        return self._choose("lr", lr, float(policy_defaults["lr"]), f"--lr auto: the lr range test's suggestion ({rule})")

    def complete(self) -> RunPlan:
        """The :class:`RunPlan` the loop runs (every step done)."""
        return complete(self.config)
