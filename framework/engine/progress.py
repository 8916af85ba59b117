"""Progress display: rich bars on a terminal, plain timestamped lines elsewhere, nothing when quiet.

The :class:`Reporter` is the one channel for messages to the user while a run lives: code
below the engine (data loading, caches, plugins, loggers) reaches the current one through
:func:`tlf.messages.notice` and :func:`tlf.messages.warn`.

When the output is not a terminal (CI, ``nohup``, a notebook's subprocess), every line starts
with the time of day, every phase (:meth:`Reporter.epoch`) says when it starts and ends, and a
long phase prints where it is at least every :data:`~tlf.messages.HEARTBEAT_SECONDS`, with the
time left in the phase and, during training, in the whole run.
"""
from __future__ import annotations

import time
from contextlib import contextmanager
from typing import Callable, Iterator, Sequence

from rich.console import Console

from .. import messages
from ..messages import HEARTBEAT_SECONDS, duration


class RunClock:
    """The whole run's time left, from the epochs timed so far in this process (refined each epoch)
    and, during the first one, from its own progress."""

    def __init__(self) -> None:
        self.first_start: float | None = None
        self.timed = 0  # epochs started and finished in this process
        self.left_after = 0  # epochs still to run after the current one

    def epoch_started(self, epoch: int, epochs: int) -> None:
        now = time.perf_counter()
        if self.first_start is None:
            self.first_start = now
        else:
            self.timed += 1
        self.left_after = epochs - epoch - 1

    def left(self, epoch_fraction: float, epoch_elapsed: float) -> float | None:
        """Seconds left in the run, ``epoch_fraction`` of the current epoch's training being done."""
        if self.timed:
            per_epoch = (time.perf_counter() - epoch_elapsed - self.first_start) / self.timed
            return per_epoch * (1 - epoch_fraction + self.left_after)
        if epoch_fraction <= 0:
            return None
        per_epoch = epoch_elapsed / epoch_fraction  # training only: the estimate grows once validation is timed
        return per_epoch * (1 - epoch_fraction + self.left_after)


class Reporter:
    """Prints what the user should see of a run (on stderr, one line per message); the newest
    one is :mod:`tlf.messages`' channel. ``enabled=False`` (ranks other than 0) prints nothing;
    ``quiet`` prints warnings only."""

    def __init__(self, quiet: bool = False, enabled: bool = True, heartbeat: float = HEARTBEAT_SECONDS) -> None:
        self.quiet = quiet or not enabled
        self.enabled = enabled
        self.console = Console(stderr=True)
        self.live = self.console.is_terminal and not self.quiet
        self.heartbeat = heartbeat
        self.clock = RunClock()
        messages.use(self)

    def _line(self, message: str) -> None:
        messages.print_markup(self.console, message if self.live else messages.stamped(message))

    def info(self, message: str) -> None:
        """``message`` (rich markup), unless quiet."""
        if not self.quiet:
            self._line(message)

    def warn(self, message: str) -> None:
        """``Warning: message`` (plain text), even when quiet."""
        if self.enabled:
            self.console.print(messages.warning_line(message), highlight=False, soft_wrap=True)

    @contextmanager
    def phase(self, description: str) -> Iterator[None]:
        """A step without progress of its own (:func:`tlf.messages.phase`)."""
        if self.quiet:
            yield
            return
        # on a terminal no spinner: a step may show a bar of its own (a download), and rich shows
        # one live display at a time
        with messages.heartbeat(self._line, messages.escape(description), None if self.live else self.heartbeat):
            yield

    def plan(self, epochs_left: int, epochs: int, batches: int, frozen: Sequence[str]) -> None:
        """The line before any work: what will run; the time it takes is shown once the first
        batches are timed, and refined every epoch."""
        stages = f"{frozen[0]}-{frozen[-1]} frozen" if len(frozen) > 1 else (f"{frozen[0]} frozen" if frozen
                                                                               else "nothing frozen")
        resumed = f" (resuming: {epochs - epochs_left} of {epochs} done)" if epochs_left < epochs else ""
        self.info(f"plan: {epochs_left} epoch(s) of {batches} training batches{resumed}, {stages}; "
                  f"the time left is shown from the first batches on")

    @contextmanager
    def epoch(self, description: str, total: int, epoch: int | None = None,
              epochs: int | None = None) -> Iterator[Callable[[int], None]]:
        """A phase of ``total`` batches: yields ``advance(images)``, called once per batch. On a
        terminal a bar with images/s and the time left; in plain output a line at its start, one at
        least every ``heartbeat`` seconds and one at its end. ``epoch``/``epochs`` (0-based, of the
        run) make it a training epoch, whose lines also give the whole run's time left."""
        if epoch is not None and epochs is not None:
            self.clock.epoch_started(epoch, epochs)
        if self.quiet:
            yield lambda images: None
        elif self.live:
            with self._bar(description, total, epoch is not None) as advance:
                yield advance
        else:
            with self._plain(description, total, epoch is not None) as advance:
                yield advance

    def _run_left(self, training: bool, fraction: float, elapsed: float) -> str:
        left = self.clock.left(fraction, elapsed) if training else None
        return "" if left is None else f"; run ~{duration(left)} left"

    @contextmanager
    def _plain(self, description: str, total: int, training: bool) -> Iterator[Callable[[int], None]]:
        start = last = time.perf_counter()
        seen = batches = 0
        self._line(f"{description}: started, {total} batches")

        def advance(images: int) -> None:
            nonlocal seen, batches, last
            seen, batches = seen + images, batches + 1
            now = time.perf_counter()
            if now - last >= self.heartbeat and batches < total:
                last, elapsed = now, now - start
                left = elapsed / batches * (total - batches)
                self._line(f"{description}: {batches}/{total} batches, {seen / elapsed:.0f} images/s, "
                           f"~{duration(left)} left{self._run_left(training, batches / total, elapsed)}")

        yield advance
        elapsed = time.perf_counter() - start
        self._line(f"{description}: {batches} batches in {duration(elapsed)} "
                   f"({seen / max(elapsed, 1e-9):.0f} images/s)")

    @contextmanager
    def _bar(self, description: str, total: int, training: bool) -> Iterator[Callable[[int], None]]:
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                                   TimeRemainingColumn)
        columns = (TextColumn("{task.description}", markup=False), BarColumn(), MofNCompleteColumn(),
                   TextColumn("{task.fields[rate]:>8.0f} img/s"), TimeElapsedColumn(), TimeRemainingColumn(),
                   TextColumn("{task.fields[run]}"))
        with Progress(*columns, console=self.console, transient=True) as progress:
            task = progress.add_task(description, total=total, rate=0.0, run="")
            seen = 0

            def advance(images: int) -> None:
                nonlocal seen
                seen += images
                state = progress.tasks[task]
                elapsed = state.elapsed or 1e-9
                run = self._run_left(training, (state.completed + 1) / total, elapsed).removeprefix("; ")
                progress.update(task, advance=1, rate=seen / elapsed, run=run)

            yield advance
