"""Built-in freeze policies: scratch, transfer, partial, init, gradual, discriminative.

Only specs here: the factories import :mod:`tlf.policies` (and torch) when called, as
``factory(argument, request: tlf.policies.PolicyRequest)``.
"""
from __future__ import annotations

from typing import Any, Callable

from tlf.arguments import integer, number
from tlf.hookspecs import hookimpl
from tlf.specs import PolicySpec


def _scratch(argument: None, request: Any) -> Any:
    from tlf.policies import Scratch
    return Scratch(train_bn=request.train_bn)


def _transfer(argument: None, request: Any) -> Any:
    from tlf.policies import Transfer
    return Transfer(train_bn=request.train_bn)


def _init(argument: None, request: Any) -> Any:
    from tlf.policies import Init
    return Init(train_bn=request.train_bn)


def _partial(argument: str | None, request: Any) -> Any:
    from tlf.policies import Partial
    return Partial(argument or "conv5", train_bn=request.train_bn)


def _gradual(argument: int | None, request: Any) -> Any:
    from tlf.policies import Gradual
    return Gradual(2 if argument is None else argument, train_bn=request.train_bn)


def _discriminative(argument: float | None, request: Any) -> Any:
    from tlf.policies import Discriminative
    return Discriminative(0.5 if argument is None else argument, train_bn=request.train_bn)


@hookimpl
def tlf_register_policies(register: Callable[..., None]) -> None:
    register(PolicySpec(name="scratch", description="random initialisation, every layer trains",
                        factory=_scratch))
    register(PolicySpec(name="transfer", description="pretrained feature extractor frozen, only the new head trains",
                        factory=_transfer, aliases=("linear", "freeze")))
    register(PolicySpec(name="partial", description="stages before STAGE frozen, STAGE onwards trains "
                                                    "(default conv5)",
                        factory=_partial, aliases=("finetune",), argument="STAGE"))
    register(PolicySpec(name="init", description="pretrained initialisation, every layer trains",
                        factory=_init, aliases=("full",)))
    register(PolicySpec(name="gradual", description="start frozen, unfreeze one more stage from conv5 down "
                                                    "every N epochs (default 2)",
                        factory=_gradual, argument="N", parse=integer))
    register(PolicySpec(name="discriminative", description="every layer trains; convK's lr = lr * DECAY^(6-K) "
                                                           "(default 0.5)",
                        factory=_discriminative, argument="DECAY", parse=number))
