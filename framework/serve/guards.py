"""ASGI middleware that refuses before the app works: oversized or slow bodies, missing API keys.

Pure ASGI (not Starlette's ``BaseHTTPMiddleware``) so a body is counted as it arrives, chunk by
chunk, and never held whole before the count says it is too large.
"""
from __future__ import annotations

import asyncio
import hmac
import json
import time
from pathlib import Path

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..errors import TlfError
from .errors import ClientError

OPEN_PATHS = ("/healthz", "/readyz", "/", "/openapi.json")  # answered without an API key


async def send_error(scope: Scope, send: Send, error: ClientError) -> None:
    """``error`` as a JSON response (for middleware, which runs outside the app's handlers);
    its kind is left in the request's state for the access log and metrics."""
    scope.setdefault("state", {})["error_kind"] = error.kind
    body = json.dumps(error.body()).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
               (b"connection", b"close"), *((k.lower().encode(), v.encode()) for k, v in error.headers.items())]
    await send({"type": "http.response.start", "status": error.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class BodyGuard:
    """A body over ``max_bytes`` is a 413 (from Content-Length at once, else when the count
    passes it); one not received within ``timeout_s`` is a 408. Both surface inside the app as
    :class:`ClientError` raised by ``receive``."""

    def __init__(self, app: ASGIApp, max_bytes: int, timeout_s: float) -> None:
        self.app, self.max_bytes, self.timeout_s = app, max_bytes, timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.max_bytes:
            await send_error(scope, send, self._too_large())
            return
        received, complete = 0, False
        deadline = time.monotonic() + self.timeout_s

        async def guarded() -> Message:
            nonlocal received, complete
            if complete:  # the body is in; later messages (a disconnect) are not timed
                return await receive()
            try:
                message = await asyncio.wait_for(receive(), max(deadline - time.monotonic(), 0.0))
            except asyncio.TimeoutError:
                raise ClientError(408, "body_timeout", f"the request body did not arrive within {self.timeout_s:g} s") from None
            received += len(message.get("body", b""))
            complete = message["type"] != "http.request" or not message.get("more_body", False)
            if received > self.max_bytes:
                raise self._too_large()
            return message

        await self.app(scope, guarded, send)

    def _too_large(self) -> ClientError:
        return ClientError(413, "body_too_large", f"the request body is over the limit of {self.max_bytes:,} bytes")


def read_api_keys(path: str) -> tuple[str, ...]:
    """The keys in ``path``, one a line (blank lines and ``#`` comments skipped), or a TlfError."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise TlfError(f"cannot read the API-key file {path}: {getattr(exc, 'strerror', None) or exc}",
                       hint="give a readable UTF-8 text file with one key a line") from None
    keys = tuple(line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#"))
    short = [i for i, key in enumerate(keys) if len(key) < 16]
    if not keys or short:
        raise TlfError(f"the API-key file {path} holds {'no key' if not keys else 'a key shorter than 16 characters'}",
                       hint="one key a line, each at least 16 characters (e.g. from 'openssl rand -hex 32')")
    return keys


class ApiKeyGuard:
    """Every path but :data:`OPEN_PATHS` needs ``Authorization: Bearer KEY`` or ``X-API-Key: KEY``
    with one of ``keys`` (compared in constant time); else 401."""

    def __init__(self, app: ASGIApp, keys: tuple[str, ...]) -> None:
        self.app, self.keys = app, tuple(key.encode() for key in keys)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.keys or scope["path"] in OPEN_PATHS or self._allowed(scope):
            await self.app(scope, receive, send)
            return
        await send_error(scope, send, ClientError(401, "unauthorized", "missing or wrong API key; send "
                                           "'Authorization: Bearer KEY' or 'X-API-Key: KEY'",
                                           {"WWW-Authenticate": "Bearer"}))

    def _allowed(self, scope: Scope) -> bool:
        headers = dict(scope["headers"])
        given = headers.get(b"x-api-key") or headers.get(b"authorization", b"").removeprefix(b"Bearer ").strip()
        # every key compared, each in constant time: the answer's timing says nothing about the keys
        return bool(given) and sum(hmac.compare_digest(given, key) for key in self.keys) > 0
