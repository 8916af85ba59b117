"""matplotlib without a display, figures saved as PNG files atomically, and image files as data: URIs."""
from __future__ import annotations

import base64
import io
from pathlib import Path
from typing import TYPE_CHECKING

from ..safe_files import atomic_write

JPEG_QUALITY = 85  # data_uri's re-encoded photos

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def pyplot():
    """matplotlib's pyplot on the Agg backend (imported on first use: matplotlib is slow to import)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def save_figure(fig: Figure, path: Path) -> None:
    """``fig`` as a PNG file at ``path``, written atomically (the previous file stays on failure)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    atomic_write(path, lambda f: f.write(buf.getvalue()), mode="wb")


def data_uri(path: Path, photo: bool = False) -> str | None:
    """``path`` as a data: URI; ``photo`` re-encodes it as JPEG (a gallery of photos is ~5x
    smaller so, and the page stays light to open and send)."""
    if not path.is_file():
        return None
    if not photo:
        return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")
    from PIL import Image
    buf = io.BytesIO()
    with Image.open(path) as image:
        image.convert("RGB").save(buf, format="JPEG", quality=JPEG_QUALITY)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")
