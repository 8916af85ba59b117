"""The Starlette app of ``tlf serve``: routes, the served models' batchers, limits and metrics.

``create_app(settings)`` builds it; uvicorn's workers build theirs with :func:`app_from_env`.
"""
from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import AsyncIterator, Callable

import numpy as np
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route
from starlette.schemas import SchemaGenerator

from .._version import __version__
from ..resources import usable_cpus
from ..runtime import Prediction
from .batching import MicroBatcher, QueueFull
from .errors import ClientError
from .guards import ApiKeyGuard, BodyGuard, read_api_keys
from .metrics import Observe, ServeMetrics
from .models import ServedModel, load_models
from .page import CSP, PAGE
from .settings import ServeSettings
from .uploads import Upload, decode, read_uploads

SCHEMA = SchemaGenerator({"openapi": "3.0.0", "info": {"title": "tlf serve", "version": __version__}})
RETRY_AFTER = {"Retry-After": "1"}


class Server:
    """What the routes share: settings, models, one batcher per model, metrics, the decode threads."""

    def __init__(self, settings: ServeSettings, models: dict[str, ServedModel]) -> None:
        self.settings, self.models, self.ready = settings, models, False
        self.metrics = ServeMetrics(lambda: sum(b.depth for b in self.batchers.values()))
        self.batchers = {name: MicroBatcher(self._runner(model), settings.max_batch, settings.max_wait_ms / 1000,
                                            settings.max_queue, self.metrics.batch_size.observe)
                         for name, model in models.items()}
        self.decoder = ThreadPoolExecutor(settings.decode_threads or usable_cpus(), thread_name_prefix="tlf-decode")

    @staticmethod
    def _runner(model: ServedModel) -> Callable[[np.ndarray], list[Prediction]]:
        classifier = model.classifier
        # every class, most likely first: each request cuts its own top-k (multi-label: the label sets)
        return lambda batch: classifier.classify(batch, top_k=len(classifier.classes))

    @asynccontextmanager
    async def lifespan(self, app: Starlette) -> AsyncIterator[None]:
        """Start the batchers, warm each model up (one call), then answer /readyz; on shutdown
        (after in-flight requests are answered) stop them."""
        for batcher in self.batchers.values():
            batcher.start()
        for name, model in self.models.items():
            crop = model.classifier.crop
            await self.batchers[name].submit([np.zeros((3, crop, crop), model.classifier.dtype)])
        self.ready = True
        try:
            yield
        finally:
            self.ready = False
            for batcher in self.batchers.values():
                await batcher.stop()
            self.decoder.shutdown(wait=True)

    def model(self, name: str | None) -> ServedModel:
        if name is None:
            return next(iter(self.models.values()))
        if name not in self.models:
            raise ClientError(404, "unknown_model", f"unknown model {name!r}; served: {', '.join(self.models)}")
        return self.models[name]

    async def classify(self, model: ServedModel, uploads: list[Upload]) -> list[Prediction]:
        """Predictions for ``uploads`` (every class, most likely first): decoded on the decode
        threads, then queued for the model's batcher."""
        loop, batcher = asyncio.get_running_loop(), self.batchers[model.name]
        prepare = lambda upload: model.classifier.preprocess(decode(upload, self.settings.max_pixels))  # noqa: E731
        with batcher.expecting(len(uploads)):
            arrays = await asyncio.gather(*(loop.run_in_executor(self.decoder, prepare, u) for u in uploads))
        return await batcher.submit(arrays)


def _top_k(request: Request, settings: ServeSettings) -> int:
    text = request.query_params.get("top_k", str(settings.top_k))
    if not (text.isascii() and text.isdigit()) or int(text) < 1:  # '²'.isdigit() is True
        raise ClientError(422, "bad_parameter", f"top_k must be a positive integer, got {text!r}")
    return int(text)


async def predict(request: Request) -> JSONResponse:
    """Classify one or more images.
    ---
    summary: 'Classify images: multipart "file" fields, or JSON {"images": [base64, ...]}'
    parameters:
      - {name: model, in: query, required: false, schema: {type: string}, description: served model (default the first)}
      - {name: top_k, in: query, required: false, schema: {type: integer, minimum: 1}, description: classes per image}
    requestBody:
      content:
        multipart/form-data:
          schema: {type: object, properties: {file: {type: array, items: {type: string, format: binary}}}}
        application/json:
          schema: {type: object, required: [images], properties: {images: {type: array, items: {type: string, format: byte}}}}
    responses:
      200: {description: 'one prediction per image, in order: filename, label, probability, labels, probabilities, indices (a multi-label model: the label set above its thresholds, whatever top_k, and multi_label true); and the model (name, version, preprocessing)'}
      '4XX': {description: '{"error": {"kind", "message"}}: bad image, wrong field, too large, too many images, unknown model, bad top_k, missing API key'}
      503: {description: queue full or answer too slow; retry after Retry-After seconds}
    """
    server: Server = request.app.state.server
    model, top_k = server.model(request.query_params.get("model")), _top_k(request, server.settings)
    uploads = await read_uploads(request, server.settings)  # the body's own deadline: BodyGuard's
    try:
        predictions = await asyncio.wait_for(server.classify(model, uploads), server.settings.request_timeout_s)
    except asyncio.TimeoutError:
        raise ClientError(503, "timeout", f"no answer within {server.settings.request_timeout_s:g} s; the server is busy",
                          RETRY_AFTER) from None
    except QueueFull as exc:
        raise ClientError(503, "queue_full", f"the server is busy: {exc}", RETRY_AFTER) from None
    server.metrics.images.labels(model.name).inc(len(uploads))
    return JSONResponse({
        "model": {"name": model.name, "version": model.version, "preprocessing": model.preprocessing()},
        "predictions": [{"filename": name, "label": p.label, "probability": p.probability,
                         **(p if p.multi_label else  # a multi-label model's answer is its whole label set
                            Prediction(p.labels[:top_k], p.probabilities[:top_k], p.indices[:top_k])).to_dict()}
                        for name, p in zip((u.name for u in uploads), predictions)]})


async def models(request: Request) -> JSONResponse:
    """The served models.
    ---
    summary: Served models (first is the default)
    responses:
      200: {description: '{"models": [{name, version, classes, input_size, input_dtype, preprocessing, backbone, dataset, policy, val_accuracy, precision, tta, tlf_version}]}'}
    """
    return JSONResponse({"models": [m.describe() for m in request.app.state.server.models.values()]})


async def healthz(request: Request) -> JSONResponse:
    """Liveness.
    ---
    summary: The process answers
    responses:
      200: {description: '{"status": "ok"}'}
    """
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> JSONResponse:
    """Readiness.
    ---
    summary: Every model is loaded and warmed up
    responses:
      200: {description: '{"status": "ready"}'}
      503: {description: '{"status": "not ready"}: starting or stopping'}
    """
    ready = request.app.state.server.ready
    return JSONResponse({"status": "ready" if ready else "not ready"}, status_code=200 if ready else 503)


async def metrics(request: Request) -> Response:
    """Prometheus metrics.
    ---
    summary: Prometheus text format
    responses:
      200: {description: 'tlf_requests_total, tlf_errors_total, tlf_request_seconds, tlf_batch_size, tlf_queue_depth, tlf_images_total'}
    """
    return Response(generate_latest(request.app.state.server.metrics.registry), media_type=CONTENT_TYPE_LATEST)


async def page(request: Request) -> HTMLResponse:
    return HTMLResponse(PAGE, headers={"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff"})


async def openapi(request: Request) -> JSONResponse:
    return JSONResponse(SCHEMA.get_schema(routes=request.app.routes))


def _client_error(request: Request, exc: Exception) -> JSONResponse:
    error = exc if isinstance(exc, ClientError) else ClientError(
        exc.status_code, {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, f"http_{exc.status_code}"),
        str(exc.detail), dict(exc.headers or {}))
    request.state.error_kind = error.kind
    return JSONResponse(error.body(), status_code=error.status, headers=error.headers)


def _internal_error(request: Request, exc: Exception) -> JSONResponse:
    """A bug: the client learns nothing of the server's insides (uvicorn logs the traceback)."""
    request.state.error_kind = "internal"
    return JSONResponse({"error": {"kind": "internal", "message": "internal error; the server's log has the details"}},
                        status_code=500)


ROUTES = [Route("/", page, include_in_schema=False), Route("/healthz", healthz), Route("/readyz", readyz),
          Route("/models", models), Route("/v1/predict", predict, methods=["POST"]), Route("/metrics", metrics),
          Route("/openapi.json", openapi, include_in_schema=False)]


def create_app(settings: ServeSettings, served: dict[str, ServedModel] | None = None) -> Starlette:
    """The app for ``settings`` (models loaded from ``settings.models`` unless given)."""
    server = Server(settings, served if served is not None else load_models(settings.models, settings.threads or usable_cpus()))
    keys = read_api_keys(settings.api_key_file) if settings.api_key_file else ()
    app = Starlette(routes=ROUTES, lifespan=server.lifespan, middleware=[
        Middleware(Observe, metrics=server.metrics, log=settings.access_log),
        Middleware(ApiKeyGuard, keys=keys),
        Middleware(BodyGuard, max_bytes=settings.max_body_bytes, timeout_s=settings.request_timeout_s)],
        exception_handlers={ClientError: _client_error, HTTPException: _client_error, Exception: _internal_error})
    app.state.server = server
    return app


def app_from_env() -> Starlette:
    """uvicorn's factory in each worker process (``tlf serve --workers N``)."""
    return create_app(ServeSettings.from_env())
