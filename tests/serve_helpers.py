"""Shared by the tlf serve tests: image bytes, hand-made hostile files, a model with other classes."""
from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image


def encoded(image: np.ndarray, fmt: str = "PNG") -> bytes:
    """``image`` encoded as a file would hold it."""
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, fmt)
    return buffer.getvalue()


def png_header(width: int, height: int) -> bytes:
    """A PNG that declares ``width`` x ``height`` pixels and holds one tiny compressed block: what a
    decompression bomb looks like before decoding (a few dozen bytes claiming gigapixels)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def relabelled(model: Path, out: Path, classes: list[str]) -> Path:
    """A copy of the export ``model`` whose metadata names other classes (a second model to serve)."""
    import json

    import onnx

    proto = onnx.load(str(model))
    for prop in proto.metadata_props:
        if prop.key == "tlf.classes":
            prop.value = json.dumps(classes)
    onnx.save(proto, str(out))
    return out
