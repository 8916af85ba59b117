"""The one exception type for user errors."""
from __future__ import annotations


class TlfError(Exception):
    """A problem the user can fix: the message names the problem, ``hint`` the fix.

    The CLI prints it on one line and exits 1; anything else is a bug.
    """

    def __init__(self, message: str, hint: str | None = None) -> None:
        self.message = message
        self.hint = hint
        super().__init__(f"{message} ({hint})" if hint else message)


class RunInterrupted(KeyboardInterrupt):
    """Ctrl-C during a training run: still a :class:`KeyboardInterrupt`, carrying what is needed to
    continue it. ``directory`` is None when the run stopped before its directory was made."""

    def __init__(self, directory: object, epochs_done: int, epochs_planned: int) -> None:
        self.directory = directory
        self.epochs_done = epochs_done
        self.epochs_planned = epochs_planned
        super().__init__(f"interrupted after {epochs_done} of {epochs_planned} epoch(s)")


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message, or its type's name when it has none: what a
    one-line error quotes of a library's (often multi-line) message."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
