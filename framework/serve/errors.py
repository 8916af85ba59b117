"""What a client did wrong, as an HTTP status, a kind (a metrics label) and one line."""
from __future__ import annotations


class ClientError(Exception):
    """Answered as ``{"error": {"kind": ..., "message": ...}}`` with ``status``."""

    def __init__(self, status: int, kind: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.kind, self.message, self.headers = status, kind, message, headers or {}

    def body(self) -> dict:
        return {"error": {"kind": self.kind, "message": self.message}}
