"""matplotlib without a display, and figures saved as PNG files atomically."""
from __future__ import annotations

import io
from pathlib import Path
from typing import TYPE_CHECKING

from ..rundir import atomic_write

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
