"""Prometheus metrics (``/metrics``, through prometheus-client) and one JSON access-log line per request.

Each app has its own registry, so several apps in one process (tests) do not share counts.
Labels take only values the server chose (route names, statuses, error kinds): nothing a
client sends becomes a label, so the number of series stays bounded.
"""
from __future__ import annotations

import json
import time
from typing import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..messages import notice

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128)


class ServeMetrics:
    """The server's counters, histograms and gauges in one registry."""

    def __init__(self, queue_depth: Callable[[], float]) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter("tlf_requests", "HTTP requests answered", ["route", "status"], registry=self.registry)
        self.errors = Counter("tlf_errors", "Requests answered with an error, by kind", ["kind"], registry=self.registry)
        self.latency = Histogram("tlf_request_seconds", "Time from request to response", ["route"],
                                 buckets=LATENCY_BUCKETS, registry=self.registry)
        self.images = Counter("tlf_images", "Images classified for requests", ["model"], registry=self.registry)
        self.batch_size = Histogram("tlf_batch_size", "Images per model call", buckets=BATCH_BUCKETS, registry=self.registry)
        self.queue = Gauge("tlf_queue_depth", "Images waiting for the model", registry=self.registry)
        self.queue.set_function(queue_depth)


def route_name(scope: Scope) -> str:
    """The matched route's path (``/v1/predict``), or ``other``: never the raw path a client sent."""
    for route in scope["app"].router.routes if "app" in scope else ():
        if route.matches(scope)[0] != Match.NONE:
            return route.path
    return "other"


class Observe:
    """Counts and times every request and writes its access-log line (JSON, one line)."""

    def __init__(self, app: ASGIApp, metrics: ServeMetrics, log: bool) -> None:
        self.app, self.metrics, self.log = app, metrics, log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start, status = time.perf_counter(), 500

        async def watch(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, watch)
        except Exception:  # Starlette's 500 handler runs outside this middleware, after it
            scope.setdefault("state", {}).setdefault("error_kind", "internal")
            raise
        finally:
            self._record(scope, status, time.perf_counter() - start)

    def _record(self, scope: Scope, status: int, seconds: float) -> None:
        route = route_name(scope)
        self.metrics.requests.labels(route, str(status)).inc()
        self.metrics.latency.labels(route).observe(seconds)
        kind = scope.get("state", {}).get("error_kind")
        if status >= 400:
            self.metrics.errors.labels(kind or f"http_{status}").inc()
        if self.log:
            client = scope.get("client") or ("-", 0)
            notice(json.dumps({"time": round(time.time(), 3), "client": client[0], "method": scope["method"],
                               "path": route, "status": status, "ms": round(1000 * seconds, 2),
                               **({"error": kind} if kind else {})}))
