"""Reading image files as RGB uint8 arrays, whatever their mode.

Conversions (Pillow):

- grayscale (``1``, ``L``), palette (``P``), CMYK, YCbCr, LAB, HSV -> RGB;
- 16-bit grayscale (``I;16*``, ``I``) -> scaled to 8 bit (``value / 257``); float (``F``) -> clipped;
- transparency (``RGBA``, ``LA``, ``PA``, palette with a transparent colour) is composited
  **on white**: fully transparent pixels often hold arbitrary colours (black, or garbage), which
  dropping the alpha channel would reveal; white is what a viewer shows for a transparent logo;
- the EXIF orientation is applied, so photos come out the way viewers show them;
- multi-frame files (GIF, TIFF) give their first frame.

Truncated or corrupt files raise :class:`UnreadableImage` with the path and the reason;
truncated images are never padded silently (Pillow's ``LOAD_TRUNCATED_IMAGES`` is left off).

Every file is opened through :func:`open_image`, which refuses before decoding anything:

- what is not a regular file (a FIFO would block the reader forever, a device never ends);
- an image whose header declares more than :data:`MAX_PIXELS` pixels or a side ratio above
  :data:`MAX_ASPECT` (a 100 kB PNG of 100000x1 pixels would be resized to gigabytes).
"""
from __future__ import annotations

import io
import os
import stat
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO, Iterator

import numpy as np

from ..errors import TlfError

# lower-case suffixes of the files a dataset folder scan treats as images; other files are ignored
IMAGE_EXTENSIONS = frozenset({
    ".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm", ".pbm", ".pnm",
})


MAX_PIXELS = 89_478_485  # width x height; Pillow's own decompression-bomb threshold
MAX_ASPECT = 32  # longer side / shorter side; panoramas stay well below, hostile strips do not


class UnreadableImage(TlfError):
    """An image file that cannot be decoded: ``path`` and ``reason`` say which and why."""

    def __init__(self, path: str | Path, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"cannot read image {self.path}: {reason}",
                         hint="delete or replace the file; datasets skip such files unless --strict")


def is_image_file(path: str | Path) -> bool:
    """Whether ``path`` has an image suffix (see :data:`IMAGE_EXTENSIONS`) and is not hidden."""
    path = Path(path)
    return path.suffix.lower() in IMAGE_EXTENSIONS and not path.name.startswith(".")


def _reason(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text if type(exc).__name__ in text else f"{type(exc).__name__}: {text}"


def check_dimensions(width: int, height: int, max_pixels: int | None = None) -> str | None:
    """Why an image of ``width`` x ``height`` pixels is refused (empty, more than ``max_pixels``
    pixels (default :data:`MAX_PIXELS`), too elongated), or None when it is within the limits."""
    limit = MAX_PIXELS if max_pixels is None else min(max_pixels, MAX_PIXELS)
    if width < 1 or height < 1:
        return f"empty image ({width}x{height})"
    if width * height > limit:
        return f"image too large ({width}x{height} = {width * height:,} pixels; the limit is {limit:,})"
    if max(width, height) > MAX_ASPECT * min(width, height):
        return f"image too elongated ({width}x{height}; sides may differ by at most {MAX_ASPECT}x)"
    return None


class _Refused(Exception):
    """Raised inside :func:`open_image` for a file refused before decoding; the message is the reason."""


@contextmanager
def open_image(path: str | Path) -> Iterator[Any]:
    """``PIL.Image.open(path)`` for a regular file whose declared size passes :func:`check_dimensions`.

    The file is opened non-blocking and checked with ``fstat`` on that descriptor (no race with
    a file swapped in between), so a FIFO or device is refused instead of blocking the reader.
    Raises :class:`UnreadableImage` for anything refused or undecodable at the header.
    """
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError as exc:
        raise UnreadableImage(path, _reason(exc)) from None
    with os.fdopen(fd, "rb") as file:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise UnreadableImage(path, f"not a regular file ({_file_kind(mode)}); only regular files are read")
        with _open_checked(file, path) as img:
            yield img


@contextmanager
def _open_checked(file: BinaryIO, path: str | Path, max_pixels: int | None = None) -> Iterator[Any]:
    """``PIL.Image.open(file)`` (the header only) once its declared size passes :func:`check_dimensions`."""
    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(file)
        why = check_dimensions(*img.size, max_pixels)
        if why:
            img.close()
            raise _Refused(why)
    except Exception as exc:  # a broken file can make any decoder raise anything; report it with its type
        # PIL names the file object ("<_io.BufferedReader name=26>", a descriptor number that
        # differs from run to run); the report names the path already
        reason = str(exc) if isinstance(exc, _Refused) else _reason(exc).replace(f" {file!r}", "")
        raise UnreadableImage(path, reason) from None
    with img:
        yield img


def _file_kind(mode: int) -> str:
    for test, kind in ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISSOCK, "a socket"), (stat.S_ISDIR, "a folder")):
        if test(mode):
            return kind
    return "a special file"


def to_rgb(img: Any) -> np.ndarray:
    """A loaded PIL image of any mode (L, P, CMYK, RGBA, 16-bit, float) as HxWx3 uint8 RGB."""
    from PIL import Image

    mode = img.mode
    if mode.startswith("I;16") or mode in ("I", "F"):
        arr = np.asarray(img)
        if mode == "F":
            arr = np.clip(arr * 255.0 if arr.max(initial=0) <= 1.0 else arr, 0, 255)
        elif mode.startswith("I;16") or arr.max(initial=0) > 255:
            arr = np.clip(arr.astype(np.float64), 0, 65535) / 257.0
        gray = np.rint(arr).astype(np.uint8)
        return np.ascontiguousarray(np.repeat(gray[:, :, None], 3, axis=2))
    if mode == "P" and "transparency" in img.info:
        img, mode = img.convert("RGBA"), "RGBA"
    if mode in ("RGBA", "LA", "PA", "La", "RGBa") or (mode in ("RGB", "L") and "transparency" in img.info):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(background, rgba)
    if img.mode != "RGB":
        img = img.convert("RGB")
    return np.asarray(img, dtype=np.uint8)


def read_rgb(path: str | Path) -> np.ndarray:
    """Decode ``path`` into an HxWx3 uint8 RGB array (see the module docstring for conversions).

    Raises :class:`UnreadableImage` for missing, corrupt, truncated, oversized or non-regular files.
    """
    with open_image(path) as img:
        return _decode(img, path)


def decode_rgb(data: bytes, name: str, max_pixels: int | None = None) -> np.ndarray:
    """:func:`read_rgb` for an image held in memory (an upload): ``name`` labels its errors;
    ``max_pixels`` lowers :data:`MAX_PIXELS`. The declared size is checked before decoding."""
    with _open_checked(io.BytesIO(data), name, max_pixels) as img:
        return _decode(img, name)


def _decode(img: Any, path: str | Path) -> np.ndarray:
    """A checked, opened image decoded as HxWx3 uint8 RGB, EXIF orientation applied."""
    from PIL import Image, ImageOps

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img.load()
            ImageOps.exif_transpose(img, in_place=True)
            arr = to_rgb(img)
    except Exception as exc:  # a broken file can make any decoder raise anything; report it with its type
        raise UnreadableImage(path, _reason(exc)) from None
    return np.ascontiguousarray(arr)


def check_image(path: str | Path) -> str | None:
    """Why ``path`` cannot be decoded, or None when it can.

    Cheaper than :func:`read_rgb`: JPEGs decode at 1/8 scale (Pillow's draft mode still reads
    every byte, so truncation is found), nothing is converted.
    """
    try:
        with open_image(path) as img:
            width, height = img.size
            img.draft("RGB", (max(1, width // 8), max(1, height // 8)))
            img.load()
    except UnreadableImage as exc:
        return exc.reason
    except Exception as exc:  # a broken file can make any decoder raise anything; report it with its type
        return _reason(exc)
    return None


def image_size(path: str | Path) -> tuple[int, int] | None:
    """(width, height) from the file header without decoding, or None when unreadable or refused."""
    try:
        with open_image(path) as img:
            return img.size
    except UnreadableImage:
        return None
