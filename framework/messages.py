"""The one channel for messages to the user from anywhere in tlf.

The engine's :class:`~tlf.engine.progress.Reporter` registers itself here, so data loading
and caches (which know nothing of the run) tell the user things the way the engine does,
and a quiet run stays quiet. Outside a run, messages go to stderr through rich.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Iterator

_sink: Callable[[str], None] | None = None


def use(sink: Callable[[str], None] | None) -> None:
    """Send :func:`notice` messages to ``sink`` (rich markup allowed); None: to stderr."""
    global _sink
    _sink = sink


@contextmanager
def scope() -> Iterator[None]:
    """Whatever :func:`use` is called with inside, the channel is as before afterwards
    (a finished run's quiet Reporter does not silence what comes next)."""
    previous = _sink
    try:
        yield
    finally:
        use(previous)


def notice(message: str) -> None:
    """Tell the user ``message`` (one line, rich markup allowed)."""
    if _sink is None:
        from rich.console import Console
        Console(stderr=True).print(message, highlight=False)
    else:
        _sink(message)
