"""Freeze policies: which stages train, with which learning rates, and when that changes.

A policy freezes stages of a :class:`~tlf.models.Classifier` (``apply``), hands the
optimizer parameter groups for what trains (``param_groups``: trainable parameters
only, one group per stage, norm and bias parameters without weight decay) and may
change the frozen set between epochs (``on_epoch_start``). Policies read a model's own
stage names, so they work on both stage contracts (conv1..conv5; embed, block1..blockN).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torch import nn

from .errors import TlfError
from .models.classifier import Classifier
from .registry import get_registry

Group = dict[str, Any]


@dataclass(frozen=True)
class PolicyRequest:
    """What a policy factory is given besides its ``name:ARG`` argument: ``factory(argument, request)``."""

    train_bn: bool = False  # frozen stages' norm layers keep trainable affine parameters


def build_policy(text: str, train_bn: bool = False) -> FreezePolicy:
    """The policy named ``text`` (``"partial:conv5"``), made by its plugin's factory."""
    return get_registry().create("policies", text, PolicyRequest(train_bn=train_bn))


def _no_decay(param: nn.Parameter) -> bool:
    """Biases, norm weights, layer scales: 1-d tensors take no weight decay."""
    return param.ndim <= 1


def parts(model: Classifier) -> tuple[str, ...]:
    """The model's stages in order, then ``head``."""
    return (*model.backbone.stage_names, "head")


def stage_groups(model: Classifier, part: str, lr: float, weight_decay: float) -> list[Group]:
    """Optimizer groups for the trainable parameters of one part (a stage or ``head``)."""
    module = model.head if part == "head" else getattr(model.backbone.stages, part)
    decay, no_decay = [], []
    for param in module.parameters():
        if param.requires_grad:
            (no_decay if _no_decay(param) else decay).append(param)
    groups = []
    for suffix, params, wd in (("", decay, weight_decay), (".no_decay", no_decay, 0.0)):
        if params:
            groups.append({"name": part + suffix, "params": params, "lr": lr, "initial_lr": lr,
                           "weight_decay": wd})
    return groups


class FreezePolicy:
    """Base class of policies (plugins subclass it): by default nothing frozen, pretrained
    weights, one learning rate for every part."""

    name = "base"
    pretrained = True
    changes_during_training = False  # True: on_epoch_start may change the frozen set
    defaults: dict[str, float | int | str] = {"lr": 1e-4, "epochs": 15}

    def __init__(self, train_bn: bool = False) -> None:
        self.train_bn = train_bn  # frozen stages' norm layers keep trainable affine parameters
        # a copy (callers may adjust it); "augment" is the run's default augmentation; "min_steps"
        # and "head_lr_scale" feed the size-adaptive defaults (tlf.adaptive_defaults)
        self.defaults = {"augment": "basic", "min_steps": 300, "head_lr_scale": 1.0, **type(self).defaults}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"

    def frozen(self, model: Classifier) -> list[str]:
        """Stages frozen at the start of training."""
        return []

    def named_stages(self) -> tuple[str, ...]:
        """The stages this policy names as the user wrote them (``partial:layer3``), checked against
        the backbone when the run is planned, before any data is read."""
        return ()

    def apply(self, model: Classifier) -> None:
        """Freeze the policy's stages (everything else trainable)."""
        model.freeze(self.frozen(model), train_bn=self.train_bn)

    def lr_scale(self, depth: int = 1) -> float:
        """Learning-rate multiplier of a part (a stage or ``head``) ``depth`` stages from the head
        (the last stage: 1, the head: 0)."""
        return 1.0

    def param_groups(self, model: Classifier, lr: float, weight_decay: float,
                     head_lr_scale: float = 1.0) -> list[Group]:
        """Groups of trainable parameters, per stage and head, each with ``name`` and ``lr``;
        the head's lr is further multiplied by ``head_lr_scale`` (the new head against the
        pretrained stages)."""
        names = parts(model)
        return [group for index, part in enumerate(names) for group in stage_groups(
            model, part, lr * self.lr_scale(len(names) - 1 - index) * (head_lr_scale if part == "head" else 1.0),
            weight_decay)]

    def on_epoch_start(self, model: Classifier, epoch: int, optimizer: Any) -> bool:
        """Change what trains at the start of ``epoch`` (0-based); True when something changed."""
        return False


class Scratch(FreezePolicy):
    """Random initialisation, everything trains."""

    name = "scratch"
    pretrained = False
    defaults = {"lr": 1e-3, "epochs": 40}


class Init(FreezePolicy):
    """Pretrained initialisation, everything trains."""

    name = "init"
    # one lr for every part: at 1000 flower images, 1e-3 everywhere beat 1e-4 for the stages with
    # the head at 10x or 3e-4 with it at 3e-3 (docs/results.md, "Defaults against dataset size")
    defaults = {"lr": 1e-3, "epochs": 15}


class Transfer(FreezePolicy):
    """The whole feature extractor frozen; only the head trains."""

    name = "transfer"
    # no augmentation by default: the frozen features are then computed once (feature cache)
    defaults = {"lr": 1e-3, "epochs": 10, "augment": "none"}

    def frozen(self, model: Classifier) -> list[str]:
        return list(model.backbone.stage_names)


class Partial(FreezePolicy):
    """Stages before ``stage`` frozen; ``stage`` onwards and the head train."""

    # the new head at 3x the trained stages' lr (measured at 1000 flower images: 1e-3 and 3e-3
    # against 3e-4 and 9e-4, docs/results.md, "Defaults against dataset size")
    defaults = {"lr": 1e-3, "epochs": 15, "head_lr_scale": 3.0}

    def __init__(self, stage: str = "conv5", train_bn: bool = False) -> None:
        super().__init__(train_bn)
        self.stage = stage
        self.name = f"partial:{stage}"

    def named_stages(self) -> tuple[str, ...]:
        return (self.stage,)

    def frozen(self, model: Classifier) -> list[str]:
        first = model.backbone.resolve_stage(self.stage)
        names = model.backbone.stage_names
        return list(names[:names.index(first)])


class Gradual(FreezePolicy):
    """Start as ``transfer``; every ``every`` epochs one more stage trains, from the last down.

    Unfrozen stages join the optimizer as new parameter groups (``on_epoch_start``),
    at the learning rate the schedule has reached (``sync_scheduler`` tells a torch
    scheduler about them). To resume, replay ``on_epoch_start`` for the epochs done
    before loading the optimizer state.
    """

    defaults = {"lr": 3e-4, "epochs": 15}
    changes_during_training = True

    def __init__(self, every: int = 2, train_bn: bool = False) -> None:
        super().__init__(train_bn)
        if every < 1:
            raise TlfError(f"gradual needs a positive number of epochs per stage, got {every}",
                           hint="write it as gradual:N, e.g. gradual:2")
        self.every = every
        self.name = f"gradual:{every}"
        self._lr: float | None = None
        self._weight_decay = 0.0

    def param_groups(self, model: Classifier, lr: float, weight_decay: float,
                     head_lr_scale: float = 1.0) -> list[Group]:
        self._lr, self._weight_decay = lr, weight_decay  # for the groups added later (stages, not the head)
        return super().param_groups(model, lr, weight_decay, head_lr_scale)

    def frozen_at(self, model: Classifier, epoch: int) -> list[str]:
        """Stages still frozen during ``epoch`` (0-based)."""
        names = model.backbone.stage_names
        return list(names[:max(0, len(names) - epoch // self.every)])

    def frozen(self, model: Classifier) -> list[str]:
        return self.frozen_at(model, 0)

    def on_epoch_start(self, model: Classifier, epoch: int, optimizer: Any) -> bool:
        wanted = self.frozen_at(model, epoch)
        thawed = [s for s in model.frozen_stages if s not in wanted]
        if not thawed:
            return False
        if self._lr is None:
            raise RuntimeError("call param_groups() to build the optimizer before on_epoch_start()")
        in_optimizer = {id(p) for group in optimizer.param_groups for p in group["params"]}
        model.freeze(wanted, train_bn=self.train_bn)
        reference = optimizer.param_groups[0]
        progress = reference["lr"] / reference.get("initial_lr", reference["lr"])  # where the schedule is
        names = model.backbone.stage_names
        for stage in thawed:
            depth = len(names) - names.index(stage)
            for group in stage_groups(model, stage, self._lr * self.lr_scale(depth), self._weight_decay):
                group["params"] = [p for p in group["params"] if id(p) not in in_optimizer]
                if group["params"]:
                    group["lr"] = group["initial_lr"] * progress
                    optimizer.add_param_group(group)
        return True


class Discriminative(FreezePolicy):
    """Everything trains; a stage's learning rate is ``lr * decay ** depth``, ``depth`` counting
    stages from it to the head: conv K's is ``lr * decay ** (6 - K)``, and on a columnar backbone
    this is layer-wise lr decay (block N: ``decay``, embed: ``decay ** (N + 1)``; head: ``lr``)."""

    defaults = {"lr": 5e-4, "epochs": 15}

    def __init__(self, decay: float = 0.5, train_bn: bool = False) -> None:
        super().__init__(train_bn)
        if not 0 < decay <= 1:
            raise TlfError(f"discriminative needs a decay in (0, 1], got {decay}",
                           hint="write it as discriminative:DECAY, e.g. discriminative:0.5")
        self.decay = decay
        self.name = f"discriminative:{decay:g}"

    def lr_scale(self, depth: int = 1) -> float:
        return self.decay ** depth


def sync_scheduler(scheduler: Any, optimizer: Any) -> None:
    """Make a torch LR scheduler aware of groups added since it was built (gradual unfreezing):
    their ``initial_lr`` becomes a base LR; LambdaLR reuses the first group's lambda.
    SequentialLR / ChainedScheduler are synced child by child."""
    for child in getattr(scheduler, "_schedulers", ()):
        sync_scheduler(child, optimizer)
    groups = optimizer.param_groups
    scheduler.base_lrs = [g["initial_lr"] for g in groups]
    if hasattr(scheduler, "lr_lambdas"):
        scheduler.lr_lambdas += [scheduler.lr_lambdas[0]] * (len(groups) - len(scheduler.lr_lambdas))
    if hasattr(scheduler, "_last_lr"):
        scheduler._last_lr = [g["lr"] for g in groups]
