"""``tlf serve``: exported models behind HTTP (Starlette + uvicorn, onnxruntime; no torch)."""
from __future__ import annotations

import errno
import os
import socket
from dataclasses import replace

import click

from ..errors import TlfError
from ..serve.settings import ENV, ServeSettings

D = ServeSettings()  # the defaults, shown in --help


def check_port(host: str, port: int) -> None:
    """A one-line error now, instead of uvicorn's traceback later, when ``host:port`` cannot be bound."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise TlfError(f"cannot listen on {host!r}: {exc.strerror}", hint="give --host an address of this machine") from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        try:
            probe.bind(address)
        except OSError as exc:
            why = "is in use" if exc.errno == errno.EADDRINUSE else f"cannot be used: {exc.strerror}"
            raise TlfError(f"port {port} on {host} {why}", hint="choose another one with --port") from None


@click.command()
@click.argument("models", nargs=-1, required=True, metavar="MODEL...")
@click.option("--host", default=D.host, show_default=True,
              help="Address to listen on; 0.0.0.0 for every interface (then consider --api-key-file).")
@click.option("--port", type=click.IntRange(0, 65535), default=D.port, show_default=True,
              help="Port to listen on; 0 picks a free one.")
@click.option("--workers", type=click.IntRange(min=1), default=D.workers, show_default=True,
              help="Server processes, each with its own copy of the models.")
@click.option("--max-batch", type=click.IntRange(min=1), default=D.max_batch, show_default=True,
              help="Most images per model call (micro-batching across requests).")
@click.option("--max-wait-ms", type=click.FloatRange(min=0), default=D.max_wait_ms, show_default=True,
              help="How long a batch waits for images of other requests still being decoded.")
@click.option("--max-queue", type=click.IntRange(min=1), default=D.max_queue, show_default=True,
              help="Images waiting for the model; more: 503 with Retry-After.")
@click.option("--max-body-mb", type=click.FloatRange(min=0, min_open=True), default=D.max_body_bytes / 2**20,
              show_default=True, help="Largest request body (MiB).")
@click.option("--max-files", type=click.IntRange(min=1), default=D.max_files, show_default=True, help="Images per request.")
@click.option("--max-pixels", type=click.IntRange(min=1), default=D.max_pixels, show_default=True,
              help="Pixels per image, read from its header before decoding.")
@click.option("--timeout", "request_timeout_s", type=click.FloatRange(min=0, min_open=True), default=D.request_timeout_s,
              show_default=True, help="Seconds to receive a request's body, and again to answer it.")
@click.option("--max-concurrency", type=click.IntRange(min=1), default=D.max_concurrency, show_default=True,
              help="Open connections and requests per worker; more: 503.")
@click.option("--top-k", type=click.IntRange(min=1), default=D.top_k, show_default=True,
              help="Classes per image when a request does not say (?top_k=).")
@click.option("--threads", type=click.IntRange(min=1),
              help="onnxruntime intra-op threads per worker (default: the CPUs divided among the workers).")
@click.option("--decode-threads", type=click.IntRange(min=1),
              help="Threads decoding images per worker (default: the CPUs divided among the workers).")
@click.option("--api-key-file", type=click.Path(dir_okay=False),
              help="File with one API key a line: requests (but /, /healthz, /readyz) must send one.")
@click.option("--no-access-log", "access_log", is_flag=True, flag_value=False, default=True,
              help="No JSON line per request on stderr.")
def serve(models: tuple[str, ...], max_body_mb: float, **options) -> None:
    """Serve exported models over HTTP: POST /v1/predict, GET /models, /healthz, /readyz,
    /metrics, /openapi.json, and a web page at /.

    Each MODEL is a file written by 'tlf export', or a run directory (its model.onnx is
    exported first, in a child process, when missing or older than best.pt); NAME=MODEL names it
    in the API (default: the file's stem or the folder's name). The first is the default model.
    Needs 'pip install tlf[serve]'; the serving process never imports torch. See docs/serve.md.
    """
    try:
        import uvicorn
    except ImportError as exc:
        raise TlfError(f"tlf serve needs {exc.name}", hint="pip install 'tlf[serve]'") from None
    from ..resources import usable_cpus
    from ..serve.app import create_app
    from ..serve.guards import read_api_keys
    from ..serve.models import load_models

    share = max(1, usable_cpus() // options["workers"])  # the CPUs, shared among the workers
    options.update({key: options[key] or share for key in ("threads", "decode_threads")})
    settings = ServeSettings(models=models, max_body_bytes=int(max_body_mb * 2**20), **options)
    if settings.max_queue < settings.max_files:  # else a request of max_files images would be 'busy' forever
        raise TlfError(f"--max-queue {settings.max_queue} is below --max-files {settings.max_files}",
                       hint=f"use --max-queue {settings.max_files} or more, or a smaller --max-files")
    if settings.api_key_file:
        read_api_keys(settings.api_key_file)  # a bad file: one line now
    check_port(settings.host, settings.port)
    served = load_models(models, settings.threads)  # every model checked before listening
    run = dict(host=settings.host, port=settings.port, limit_concurrency=settings.max_concurrency,
               timeout_graceful_shutdown=settings.request_timeout_s, access_log=False, log_level="warning")
    click.echo(f"serving {', '.join(f'{m.name} ({m.version})' for m in served.values())} on "
               f"http://{settings.host}:{settings.port}/ with {settings.workers} worker(s)", err=True)
    if settings.workers == 1:
        uvicorn.run(create_app(settings, served), **run)
        return
    # each worker process builds its own app from the settings (models already exported and checked)
    os.environ[ENV] = replace(settings, models=tuple(f"{name}={m.classifier.path}" for name, m in served.items())).to_env()
    del served  # the supervisor serves nothing: only the workers hold the models
    uvicorn.run("tlf.serve.app:app_from_env", factory=True, workers=settings.workers, **run)
