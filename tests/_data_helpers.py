"""Helpers for the data tests: tiny images, archives and a loopback HTTP server."""
from __future__ import annotations

import contextlib
import functools
import hashlib
import http.server
import io
import tarfile
import threading
import zipfile
from pathlib import Path
from typing import Iterator

import numpy as np
from PIL import Image


def write_image(path: Path, seed: int = 0, size: tuple[int, int] = (12, 10), fmt: str | None = None) -> Path:
    """A small random RGB image (format from the suffix unless ``fmt``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path, format=fmt)
    return path


def make_class_tree(root: Path, counts: dict[str, int], seed: int = 0) -> Path:
    """``root/<class>/<i>.jpg`` with ``counts[class]`` images each."""
    for c, (name, n) in enumerate(counts.items()):
        for i in range(n):
            write_image(root / name / f"{i:03d}.jpg", seed=seed * 1000 + c * 100 + i)
    return root


def truncate(path: Path, keep: float = 0.5) -> Path:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    return path


def make_tar(folder: Path, archive: Path, arcname: str | None = None) -> Path:
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(folder, arcname=arcname or folder.name)
    return archive


def make_zip(folder: Path, archive: Path) -> Path:
    with zipfile.ZipFile(archive, "w") as zf:
        for path in sorted(folder.rglob("*")):
            zf.write(path, path.relative_to(folder.parent).as_posix())
    return archive


def add_tar_member(archive: Path, name: str, data: bytes = b"x", **info: object) -> None:
    """Write a tar.gz with one member ``name`` (``info`` sets TarInfo fields such as type, linkname)."""
    with tarfile.open(archive, "w:gz") as tar:
        member = tarfile.TarInfo(name)
        member.size = len(data) if not info else 0
        for key, value in info.items():
            setattr(member, key, value)
        tar.addfile(member, io.BytesIO(data) if not info else None)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


class RangeHandler(_QuietHandler):
    """Also answers ``Range: bytes=N-`` with 206 (or 416 past the end); records the ranges asked."""

    ranges: list[str] = []

    def do_GET(self) -> None:
        wanted = self.headers.get("Range")
        if not wanted:
            return super().do_GET()
        self.ranges.append(wanted)
        data = (Path(self.directory) / self.path.lstrip("/")).read_bytes()
        start = int(wanted.removeprefix("bytes=").rstrip("-"))
        if start >= len(data):
            self.send_error(416)
            return
        self.send_response(206)
        self.send_header("Content-Length", str(len(data) - start))
        self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.end_headers()
        self.wfile.write(data[start:])


@contextlib.contextmanager
def serve(folder: Path, handler: type = _QuietHandler) -> Iterator[str]:
    """Serve ``folder`` on 127.0.0.1 from a thread; yields the base URL."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(handler, directory=str(folder)))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
