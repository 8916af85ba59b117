"""The one channel for messages to the user from anywhere in tlf.

Two kinds: :func:`notice` (what happened: a cache built, images skipped) and :func:`warn`
(something failed and tlf goes on without it: a plugin, a logger). The engine's
:class:`~tlf.engine.progress.Reporter` makes itself the channel while a run lives, so data
loading, caches and plugins (which know nothing of the run) tell the user things the way the
engine does, and a quiet run stays quiet (warnings still show). Otherwise, as for a library
user's ``import tlf``, both go to stderr, one line each. Python's ``warnings`` are for
programmers, not for this: tlf issues none (``tests/test_one_place.py`` checks).
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator, Protocol


class Channel(Protocol):
    """Where messages go: ``info`` gets rich markup, ``warn`` the text after ``Warning:``."""

    def info(self, message: str) -> None: ...

    def warn(self, message: str) -> None: ...


class Stderr:
    """The channel outside a run: each message one line on stderr (no wrapping, so logs keep it whole)."""

    def info(self, message: str) -> None:
        from rich.console import Console
        print_markup(Console(stderr=True), message)

    def warn(self, message: str) -> None:
        self.info(warning_line(message))


_channel: Channel | None = None


def use(channel: Channel | None) -> None:
    """Send messages to ``channel``; None: to stderr."""
    global _channel
    _channel = channel


@contextmanager
def scope() -> Iterator[None]:
    """Whatever :func:`use` is called with inside, the channel is as before afterwards
    (a finished run's quiet Reporter does not silence what comes next)."""
    previous = _channel
    try:
        yield
    finally:
        use(previous)


def _current() -> Channel:
    return _channel if _channel is not None else Stderr()


def notice(message: str, *, markup: bool = False) -> None:
    """Tell the user ``message`` (one line; taken as plain text unless ``markup``: a path or an
    exception's text may hold brackets that rich would read as markup)."""
    _current().info(message if markup else _escape(message))


def warn(message: str) -> None:
    """Tell the user something failed and tlf goes on without it: ``Warning: message``, shown
    even in a quiet run."""
    _current().warn(message)


def warning_line(message: str) -> str:
    """``Warning: message`` as rich markup (the message as plain text)."""
    return f"[yellow]Warning:[/yellow] {_escape(message)}"


def _escape(text: str) -> str:
    from rich.markup import escape
    return escape(text)


def print_markup(console: Any, message: str) -> None:
    """``message`` as rich markup on ``console``, one line. Text from outside (names, paths) is
    escaped where a message is built; one that reaches here unescaped and is not valid markup
    (``[/x]``) is printed as it is rather than raising ``MarkupError``."""
    from rich.errors import MarkupError
    try:
        console.print(message, highlight=False, soft_wrap=True)
    except MarkupError:
        console.print(message, highlight=False, soft_wrap=True, markup=False)


def plain_console(**options: Any) -> Any:
    """A rich ``Console`` for command output that never reads strings as markup: table cells,
    titles and lines hold names, paths and descriptions from plugins, data and the command line.
    Style with ``rich.text.Text`` or ``style=``."""
    from rich.console import Console
    return Console(markup=False, highlight=False, **options)
