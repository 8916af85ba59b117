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
