"""Pretrained timm weights from the Hugging Face hub cache, without waiting on a network
that is not there.

timm downloads through ``huggingface_hub``, which retries an unreachable hub for about a
minute before it gives up, and asks the hub again even when the file is cached. Here the
cache is looked at first (a hit loads the file directly), and without a hit the hub's
host gets one short connection attempt before timm is asked to download.
"""
from __future__ import annotations

import socket
from typing import Any
from urllib.parse import urlparse

from tlf.errors import TlfError

CONNECT_TIMEOUT = 3.0  # seconds for the one probe of the hub's host


def cached_file(cfg: dict[str, Any]) -> str | None:
    """The cached weights file for ``cfg``'s ``hf_hub_id``, or ``None``."""
    from huggingface_hub import constants, try_to_load_from_cache

    repo, _, revision = cfg["hf_hub_id"].partition("@")
    names = [cfg["hf_hub_filename"]] if cfg.get("hf_hub_filename") else ["model.safetensors", "pytorch_model.bin"]
    for name in names:
        path = try_to_load_from_cache(repo, name, cache_dir=constants.HF_HUB_CACHE, revision=revision or None)
        if isinstance(path, str):
            return path
    return None


def hub_unreachable() -> str | None:
    """Why the hub cannot be reached (offline mode, no route, no name), or ``None``."""
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        return "HF_HUB_OFFLINE is set"
    url = urlparse(constants.ENDPOINT)
    host, port = url.hostname or "huggingface.co", url.port or (80 if url.scheme == "http" else 443)
    try:
        socket.create_connection((host, port), timeout=CONNECT_TIMEOUT).close()
    except OSError as exc:
        return f"{host} cannot be reached: {exc}"
    return None


def pretrained(name: str, cfg: dict[str, Any]) -> Any:
    """timm model ``name`` with its pretrained weights (``cfg`` is its ``pretrained_cfg``)."""
    import timm

    overlay: dict[str, Any] = {}
    hub_id = cfg.get("hf_hub_id")
    where = f"https://huggingface.co/{hub_id}" if hub_id else cfg.get("url") or "timm"
    hint = f"download them from {where} and pass the file with --weights PATH, or use --no-pretrained"
    if hub_id:
        path = cached_file(cfg)
        if path is not None:
            overlay = {"file": path}
        elif (why := hub_unreachable()) is not None:
            from huggingface_hub import constants
            raise TlfError(f"pretrained weights for timm model {name!r} are not in the Hugging Face cache "
                           f"({constants.HF_HUB_CACHE}) and cannot be downloaded: {why}", hint=hint)
    try:
        return timm.create_model(name, pretrained=True, pretrained_cfg_overlay=overlay or None)
    except Exception as exc:  # offline, no weights for this model, hub errors, a corrupt cached file
        raise TlfError(f"cannot get pretrained weights for timm model {name!r}: {type(exc).__name__}: {exc}",
                       hint=hint) from None
