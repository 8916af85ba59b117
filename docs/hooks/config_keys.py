"""MkDocs hook: the configuration-keys table of docs/configuration.md, generated from
:class:`tlf.config.RunConfig` and the command-line options of ``tlf train``, so that it
cannot drift from the code (the page holds only the marker)."""
from __future__ import annotations

import dataclasses
import typing
from typing import Any

import click

MARKER = "<!-- tlf:config-keys -->"


def _flag_help() -> dict[str, tuple[str, str]]:
    """Setting name -> (its ``tlf train`` option flags, help text)."""
    from tlf.commands.train import train
    found = {}
    for param in train.params:
        if isinstance(param, click.Option) and param.name:
            flags = ", ".join(f"`{flag}`" for flag in [*param.opts, *param.secondary_opts])
            found[param.name] = (flags, " ".join((param.help or "").split()))
    return found


def _cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def config_table() -> str:
    """One row per RunConfig field: key, type, default, flag, help."""
    from tlf.config import RunConfig
    hints = typing.get_type_hints(RunConfig)
    flags = _flag_help()
    rows = ["| key | type | default | `tlf train` flag | meaning |", "| --- | --- | --- | --- | --- |"]
    for field in dataclasses.fields(RunConfig):
        kind = getattr(hints[field.name], "__name__", None) or str(hints[field.name]).replace("typing.", "")
        flag, meaning = flags.get(field.name, ("", ""))
        rows.append(f"| `{field.name}` | {_cell(kind)} | `{_cell(field.default)}` | {flag} | {_cell(meaning)} |")
    return "\n".join(rows)


def on_page_markdown(markdown: str, page: Any, **kwargs: Any) -> str:
    if MARKER not in markdown:
        return markdown
    return markdown.replace(MARKER, config_table())
