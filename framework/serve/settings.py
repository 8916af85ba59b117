"""Every setting of a served model's server, with its default, in one place (the CLI's options
and the app read them from here)."""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass

ENV = "TLF_SERVE_SETTINGS"  # how ``--workers`` hands the settings to uvicorn's worker processes


@dataclass(frozen=True)
class ServeSettings:
    """What ``tlf serve`` was asked for: models, network, batching and limits."""

    models: tuple[str, ...] = ()  # [NAME=]PATH of each .onnx file, first one the default
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 1
    max_batch: int = 8  # images per onnxruntime call (on CPUs, larger batches cost more per image: docs/performance.md)
    max_wait_ms: float = 5.0  # how long a batch waits for images still being decoded
    max_queue: int = 256  # images waiting for the model; beyond: 503 with Retry-After
    max_body_bytes: int = 20 * 2**20
    max_files: int = 32  # images per request
    max_pixels: int = 40_000_000  # per image, from its header, before decoding
    request_timeout_s: float = 30.0  # reading the body, and answering
    max_concurrency: int = 64  # open connections and tasks; beyond: 503 (uvicorn's limit_concurrency)
    top_k: int = 5  # default of the top_k query parameter
    threads: int | None = None  # onnxruntime intra-op threads; None: one per CPU this process may use
    decode_threads: int | None = None  # None: one per CPU this process may use
    api_key_file: str | None = None  # one key a line; None: no key needed
    access_log: bool = True

    def to_env(self) -> str:
        """JSON for :data:`ENV`."""
        return json.dumps(asdict(self))

    @classmethod
    def from_env(cls) -> ServeSettings:
        """The settings ``tlf serve`` left in :data:`ENV` for its worker processes."""
        data = json.loads(os.environ[ENV])
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})
