"""Reading the YAML and JSON files a user hands tlf (``--config``, a run's ``config.yaml``,
``--class-weights``), bounded: nothing in such a file can make tlf parse for minutes, expand
without end or fail with a traceback. :func:`read_text` reads other text files the same way
with their own size limit (the label tables of ``table:PATH``).

- at most ``MAX_BYTES`` (a settings file is a few hundred bytes; 300 MB took minutes to parse);
- UTF-8 text (a byte-order mark is allowed): latin-1 or UTF-16 is one line saying so;
- no YAML aliases (``*name``): "billion laughs" nests aliases of aliases into an exponential
  structure that ``MemoryError``-ed when used; settings never need them;
- nesting deeper than Python's recursion limit is one line, not a ``RecursionError``.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from .errors import TlfError, first_line

MAX_BYTES = 1 << 20  # 1 MiB


def read_structured(path: Path, what: str, hint: str) -> Any:
    """The content of the YAML (or, for ``.json``, JSON) file ``path``; ``what`` names the file
    in errors ("config file", "class weights"), ``hint`` says how to fix its content."""
    path = Path(path)
    text = read_text(path, what)
    try:
        if path.suffix == ".json":
            return json.loads(text)
        return yaml.load(text, Loader=_NoAliases)  # noqa: S506 - a SafeLoader without aliases
    except RecursionError:
        raise TlfError(f"cannot parse {what} {path}: it is nested too deeply", hint=hint) from None
    except Exception as exc:  # yaml.YAMLError, json.JSONDecodeError, ValueError
        kind = "JSON" if path.suffix == ".json" else "YAML"
        raise TlfError(f"{what} {path} is not valid {kind}: {first_line(exc)}", hint=hint) from None


def read_text(path: Path, what: str, max_bytes: int = MAX_BYTES,
              too_large: str = "a settings file is a few lines",
              hint: str = "pass the right file (settings as 'name: value' lines)") -> str:
    """The UTF-8 text of ``path`` (a byte-order mark allowed), read bounded: more than
    ``max_bytes`` bytes (``too_large`` says why that is wrong, ``hint`` what to do), an
    unreadable file or text that is not UTF-8 is a one-line :class:`TlfError` naming ``what``."""
    try:
        with open(path, "rb") as file:
            data = file.read(max_bytes + 1)
    except OSError as exc:
        raise TlfError(f"cannot read {what} {path}: {exc.strerror or exc}", hint="check the path and its permissions") from None
    if len(data) > max_bytes:
        raise TlfError(f"{what} {path} is larger than {_size(max_bytes)}; {too_large}", hint=hint)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise TlfError(f"{what} {path} is not UTF-8 text (byte 0x{data[exc.start]:02x} at position {exc.start})",
                       hint="save it as UTF-8 (most editors: 'Save with encoding')") from None


def _size(n: int) -> str:
    return f"{n // (1 << 20)} MiB" if n > 1 << 20 else f"{n // 1024} KiB"


class _NoAliases(yaml.SafeLoader):
    """PyYAML's safe loader, refusing aliases."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.YAMLError(f"alias *{event.anchor} at line {event.start_mark.line + 1}: "
                                 "tlf does not read YAML aliases (anchors) in settings files")
        return super().compose_node(parent, index)
