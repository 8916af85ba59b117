"""Built-in task: single-label classification. Registration only: the factory imports the
implementation (and torch) when a run asks for it."""
from __future__ import annotations

from typing import Any, Callable

from tlf.hookspecs import hookimpl
from tlf.specs import TaskSpec


def _single_label(argument: None, request: Any) -> Any:
    from .single_label import SingleLabel
    return SingleLabel(request)


def _multi_label(argument: None, request: Any) -> Any:
    from .multi_label import MultiLabel
    return MultiLabel(request)


@hookimpl
def tlf_register_tasks(register: Callable[[TaskSpec], None]) -> None:
    register(TaskSpec(
        name="single-label", factory=_single_label,
        description="one class per image: softmax head, cross-entropy loss, accuracy picks the best checkpoint"))
    register(TaskSpec(
        name="multi-label", factory=_multi_label,
        description="a set of classes per image: sigmoid per class, binary cross-entropy, mAP picks the best "
                    "checkpoint, per-class thresholds tuned on validation"))
