"""Progress display: rich bars on a terminal, one line per epoch in logs, nothing when quiet.

The :class:`Reporter` is the one channel for messages to the user while a run lives: code
below the engine (data loading, caches, plugins, loggers) reaches the current one through
:func:`tlf.messages.notice` and :func:`tlf.messages.warn`.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

from rich.console import Console

from .. import messages


class Reporter:
    """Prints what the user should see of a run (on stderr, one line per message); the newest
    one is :mod:`tlf.messages`' channel. ``enabled=False`` (ranks other than 0) prints nothing;
    ``quiet`` prints warnings only."""

    def __init__(self, quiet: bool = False, enabled: bool = True) -> None:
        self.quiet = quiet or not enabled
        self.enabled = enabled
        self.console = Console(stderr=True)
        self.live = self.console.is_terminal and not self.quiet
        messages.use(self)

    def info(self, message: str) -> None:
        """``message`` (rich markup), unless quiet."""
        if not self.quiet:
            messages.print_markup(self.console, message)

    def warn(self, message: str) -> None:
        """``Warning: message`` (plain text), even when quiet."""
        if self.enabled:
            self.console.print(messages.warning_line(message), highlight=False, soft_wrap=True)

    @contextmanager
    def epoch(self, description: str, total: int) -> Iterator:
        """Yields ``advance(images)``; shows a bar with images/s and ETA on a terminal."""
        if not self.live:
            yield lambda images: None
            return
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                                   TimeRemainingColumn)
        columns = (TextColumn("{task.description}", markup=False), BarColumn(), MofNCompleteColumn(),
                   TextColumn("{task.fields[rate]:>8.0f} img/s"), TimeElapsedColumn(), TimeRemainingColumn())
        with Progress(*columns, console=self.console, transient=True) as progress:
            task = progress.add_task(description, total=total, rate=0.0)
            seen = 0

            def advance(images: int) -> None:
                nonlocal seen
                seen += images
                elapsed = progress.tasks[task].elapsed or 1e-9
                progress.update(task, advance=1, rate=seen / elapsed)

            yield advance

