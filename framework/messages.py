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

import threading
import time
from contextlib import contextmanager
from datetime import datetime
from typing import Any, Callable, Iterator, Protocol

HEARTBEAT_SECONDS = 10.0  # the longest silence of a long step in plain (non-terminal) output


def duration(seconds: float) -> str:
    """``42 s``, ``3 min 20 s``, ``1 h 05 min``: a time span as a person reads it."""
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


def stamped(message: str) -> str:
    """``message`` after the time of day, as plain-output progress lines are written."""
    return f"{datetime.now():%H:%M:%S} {message}"


@contextmanager
def heartbeat(say: Callable[[str], None], description: str, interval: float | None,
              announce: bool = True) -> Iterator[None]:
    """Say when a step starts (``announce``; else only once it has run ``interval`` seconds, so that
    a command that fails at once still prints its error alone) and ends and, every ``interval``
    seconds in between (None: never), that it is still running. Hand-written: no library prints a
    plain line on a timer around a call that reports no progress of its own (an ONNX export)."""
    start, done = time.perf_counter(), threading.Event()
    if announce:
        say(f"{description}: started")

    def beat() -> None:
        while not done.wait(interval):
            say(f"{description}: still running, {duration(time.perf_counter() - start)} so far")
    thread = threading.Thread(target=beat, daemon=True) if interval else None
    if thread is not None:
        thread.start()
    try:
        yield
    finally:
        done.set()
        if thread is not None:
            thread.join()
    say(f"{description}: done in {duration(time.perf_counter() - start)}")


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

    @contextmanager
    def phase(self, description: str) -> Iterator[None]:
        from rich.console import Console
        terminal = Console(stderr=True).is_terminal
        with heartbeat(lambda line: self.info(line if terminal else stamped(line)), escape(description),
                       None if terminal else HEARTBEAT_SECONDS, announce=False):
            yield


_channel: Channel | None = None
_shown: set[str] = set()  # the one-time notices this process has shown


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


def notice(message: str, *, markup: bool = False, once: bool | str = False) -> None:
    """Tell the user ``message`` (one line; taken as plain text unless ``markup``: a path or an
    exception's text may hold brackets that rich would read as markup). ``once``: a fact about the
    data (its decode cache, its unreadable files) that this process shows once, however many
    loaders meet it (training, then the end-of-run evaluation); a text is the fact's key, for a
    message whose wording changes when it is met again."""
    if once:
        key = message if once is True else once
        if key in _shown:
            return
        _shown.add(key)
    _current().info(message if markup else escape(message))


def forget_shown() -> None:
    """Show one-time notices again, as a new process would (tests call it between tests)."""
    _shown.clear()


@contextmanager
def phase(description: str) -> Iterator[None]:
    """A step that may take a while and reports no progress of its own (an export, an evaluation):
    the user is told when it starts and ends and, in plain output, every few seconds that it is
    still running. ``description`` is plain text."""
    channel = _current()
    if hasattr(channel, "phase"):
        with channel.phase(description):
            yield
    else:  # a library user's channel with info and warn only
        with heartbeat(channel.info, escape(description), None, announce=False):
            yield


def warn(message: str) -> None:
    """Tell the user something failed and tlf goes on without it: ``Warning: message``, shown
    even in a quiet run."""
    _current().warn(message)


def warning_line(message: str) -> str:
    """``Warning: message`` as rich markup (the message as plain text)."""
    return f"[yellow]Warning:[/yellow] {escape(message)}"


def escape(text: str) -> str:
    """``text`` as rich markup that shows it as it is."""
    from rich.markup import escape as rich_escape
    return rich_escape(text)


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
