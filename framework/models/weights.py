"""Getting weights into a native model: :func:`load_weights` decides where they come from
(a local file, else the family's pretrained source, else random) and says which; the rest
reads files, downloads into the torch hub cache, and maps files whose key names differ.

Everything is loaded with ``torch.load(..., weights_only=True)``.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

import torch
from torch import nn

from ..errors import TlfError
from ..rundir import load_error

StateDict = dict[str, torch.Tensor]


@dataclass(frozen=True)
class Pretrained:
    """A family's pretrained weights: where they came from (kept in ``BackboneMeta.weights``)
    and the state dict."""

    source: str
    state_dict: Mapping[str, torch.Tensor]


def load_weights(model: nn.Module, request: Any, pretrained: Callable[[], Pretrained],
                 ignore: tuple[str, ...] = ()) -> str | None:
    """Load ``request.weights`` (a local file) into ``model``, else, with ``request.pretrained``,
    what the family's ``pretrained()`` fetches, else nothing (random init). Tensors under the
    ``ignore`` prefixes (the old classifier) are skipped; a file whose key names are another
    implementation's is mapped by position. Returns where the weights came from, ``None`` for random.
    """
    if request.weights is not None:
        source, state = str(request.weights), read_state_dict(request.weights)
    elif request.pretrained:
        fetched = pretrained()
        source, state = fetched.source, fetched.state_dict
    else:
        return None
    if not set(state) & set(model.state_dict()):
        state = positional(state, model, source)
    load_into(model, state, source, ignore)
    return source


def read_state_dict(path: Path | str) -> StateDict:
    """A state dict from ``path``: a plain state dict, or a checkpoint dict holding one
    under ``"model"`` or ``"state_dict"`` (``"module."`` prefixes of DDP are removed)."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise TlfError(f"weights file {str(path)!r} does not exist", hint="check the --weights path")
    try:
        data: Any = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle errors, truncated files, non-tensor content
        raise load_error(path, exc, "weights file",
                         hint="pass a state dict or checkpoint saved with torch.save (tensors only)") from None
    for key in ("model", "state_dict"):
        if isinstance(data, dict) and isinstance(data.get(key), dict):
            data = data[key]
            break
    if not isinstance(data, dict) or not data or not all(isinstance(v, torch.Tensor) for v in data.values()):
        raise TlfError(f"weights file {str(path)!r} holds no state dict",
                       hint="expected {name: tensor}, or a checkpoint with a 'model' or 'state_dict' entry")
    if all(k.startswith("module.") for k in data):
        data = {k[len("module."):]: v for k, v in data.items()}
    return data


def _ignored(key: str, prefixes: tuple[str, ...]) -> bool:
    return any(key == p or key.startswith(p + ".") for p in prefixes)


def load_into(model: nn.Module, state_dict: Mapping[str, torch.Tensor], source: str,
              ignore: tuple[str, ...] = ()) -> None:
    """Load ``state_dict`` into ``model``, every key matching except those under the
    ``ignore`` prefixes (the old classifier); mismatches raise :class:`TlfError`."""
    own = {k: v for k, v in model.state_dict().items() if not _ignored(k, ignore)}
    given = {k: v for k, v in state_dict.items() if not _ignored(k, ignore)}
    missing = [k for k in own if k not in given]
    unexpected = [k for k in given if k not in own]
    shapes = [f"{k} {tuple(given[k].shape)} vs {tuple(own[k].shape)}"
              for k in own if k in given and given[k].shape != own[k].shape]
    problems = []
    for label, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", shapes)):
        if keys:
            problems.append(f"{len(keys)} {label} ({', '.join(keys[:3])}{', ...' if len(keys) > 3 else ''})")
    if problems:
        raise TlfError(f"weights from {source} do not fit this backbone: {'; '.join(problems)}",
                       hint="use a file saved from the same architecture, or --no-pretrained")
    model.load_state_dict(given, strict=False)


def positional(state_dict: Mapping[str, torch.Tensor], model: nn.Module, source: str) -> StateDict:
    """Rename ``state_dict``'s entries to ``model``'s keys by position (same order, same
    shapes): for files from another implementation of the same architecture."""
    own = model.state_dict()
    if len(own) != len(state_dict):
        raise TlfError(f"weights from {source} hold {len(state_dict)} tensors, the model has {len(own)}",
                       hint="the file is for another architecture")
    renamed = {}
    for (key, target), (theirs, value) in zip(own.items(), state_dict.items()):
        if target.shape != value.shape:
            raise TlfError(f"weights from {source} do not line up: {theirs} {tuple(value.shape)} "
                           f"cannot go to {key} {tuple(target.shape)}",
                           hint="the file is for another architecture")
        renamed[key] = value
    return renamed


def hub_checkpoint_dir() -> Path:
    """Where torch hub keeps downloaded weights (``$TORCH_HOME/hub/checkpoints``)."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def download_state_dict(url: str, what: str) -> StateDict:
    """The state dict at ``url``, from the torch hub cache or downloaded into it.

    Offline without the file: :class:`TlfError` naming the file, the folder and the URL.
    """
    directory = hub_checkpoint_dir()
    file_name = os.path.basename(url)
    try:
        return torch.hub.load_state_dict_from_url(url, model_dir=str(directory), map_location="cpu",
                                                  progress=False, file_name=file_name, weights_only=True)
    except Exception as exc:  # no network, HTTP errors, a corrupt cached file
        if (directory / file_name).is_file():
            raise TlfError(f"cannot read cached weights {directory / file_name} for {what}: {exc}",
                           hint="delete the file so that it is downloaded again") from None
        raise TlfError(f"pretrained weights for {what} are not cached and cannot be downloaded ({exc})",
                       hint=f"put {file_name} (from {url}) into {directory}, "
                            f"or pass --weights PATH, or use --no-pretrained") from None
