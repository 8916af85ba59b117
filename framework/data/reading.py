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
"""
from __future__ import annotations

from typing import Any

import warnings
from pathlib import Path

import numpy as np

from ..errors import TlfError

# lower-case suffixes of the files a dataset folder scan treats as images; other files are ignored
IMAGE_EXTENSIONS = frozenset({
    ".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm", ".pbm", ".pnm",
})


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

    Raises :class:`UnreadableImage` for missing, corrupt, truncated or oversized files.
    """
    from PIL import Image, ImageOps

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as img:
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
    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                width, height = img.size
                if width < 1 or height < 1:
                    return f"empty image ({width}x{height})"
                img.draft("RGB", (max(1, width // 8), max(1, height // 8)))
                img.load()
    except Exception as exc:  # a broken file can make any decoder raise anything; report it with its type
        return _reason(exc)
    return None


def image_size(path: str | Path) -> tuple[int, int] | None:
    """(width, height) from the file header without decoding, or None when unreadable."""
    from PIL import Image

    try:
        with Image.open(path) as img:
            return img.size
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError):
        return None
