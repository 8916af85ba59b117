"""Checking a run's plan before any data is read: every problem found, reported at once.

:func:`tlf.plan.resolve` runs each check through :class:`Problems`, so a mistyped policy
stage, an unknown augmentation and an unwritable ``--out`` come out as one error, in
about a second, instead of one at a time after a dataset scan or a download.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, TypeVar

from . import messages
from .errors import TlfError

T = TypeVar("T")


class Problems:
    """The :class:`TlfError` of every check that failed; :meth:`raise_found` raises them as one."""

    def __init__(self) -> None:
        self.found: list[TlfError] = []

    def attempt(self, check: Callable[..., T], *args: Any) -> T | None:
        """``check(*args)``, or None when it raises a :class:`TlfError` (kept for :meth:`raise_found`)."""
        try:
            return check(*args)
        except TlfError as exc:
            self.found.append(exc)
            return None

    def raise_found(self) -> None:
        """The one problem as it was raised, or every problem numbered in one line."""
        if len(self.found) == 1:
            raise self.found[0]
        if self.found:
            listed = "; ".join(f"({i}) {exc}" for i, exc in enumerate(self.found, 1))
            raise TlfError(f"{len(self.found)} problems, nothing was run: {listed}")


def folder_dataset(text: str) -> str:
    """``--dataset PATH`` of an existing folder, when no dataset is called that: the dataset plugin
    that reads folders (``DatasetSpec.reads_folder``) with ``PATH`` as argument, said so; a path
    that is no folder is an error saying how to name one."""
    from .registry import get_registry
    registry = get_registry()
    readers = [spec for spec in registry.specs("datasets") if getattr(spec, "reads_folder", False)]
    if text in registry.names("datasets") or ":" in text or len(readers) != 1:
        return text  # a name (the registry checks it), or no single folder reader to suggest
    usage = f"--dataset {readers[0].name}:PATH"
    if Path(text).expanduser().is_dir():
        messages.notice(f"--dataset {text} is a folder: reading it as --dataset {readers[0].name}:{text}")
        return f"{readers[0].name}:{text}"
    if "/" in text or "\\" in text or text.startswith((".", "~")):
        raise TlfError(f"--dataset {text}: no such dataset, and no such folder",
                       hint=f"for your own images, one sub-folder per class, pass {usage}; "
                            f"'tlf plugins --kind datasets' lists the datasets")
    return text


def check_model(policy: Any, backbone: str, head: str = "linear", pooling: str | None = None,
                image_size: int | None = None) -> None:
    """The model the plan asks for can be built: every stage ``policy`` names (``partial:layer3``)
    exists on ``backbone``, and the head, pooling and image size suit it (``--pooling`` on a CNN,
    ``--head mlp`` on a ViT, a size its patch grid does not tile). Only when the plan names
    something that needs it: the model is then assembled without weights on PyTorch's meta device
    (no memory, no computation), as the run would assemble it."""
    from .models.backbone import STAGES
    native = [s for s in policy.named_stages() if s.strip() not in STAGES and f"conv{s.strip()}" not in STAGES]
    if not native and head == "linear" and pooling is None and image_size is None:
        return
    import torch

    from .models.classifier import build_model
    try:
        with torch.device("meta"):
            model = build_model(backbone, 2, pretrained=False, head=head, pooling=pooling, image_size=image_size)
    except TlfError:
        raise
    except Exception:  # a plugin's model that cannot be built without data on the meta device:
        return  # it is checked when the model is built for the run
    for stage in native:
        model.backbone.resolve_stage(stage)
