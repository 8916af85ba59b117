"""Precision-recall curves, one per class (multi-label evaluation), as a PNG file."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from .png import pyplot, save_figure

SHOWN = 20  # curves drawn; beyond it, the classes with the lowest AP (the ones worth a look)


def plot_pr_curves(curves: Sequence[tuple[str, np.ndarray, np.ndarray, float]], path: Path, title: str = "") -> None:
    """``curves``: (class, recall, precision, AP) per class, recall rising; drawn as steps."""
    plt = pyplot()
    shown = sorted(curves, key=lambda c: c[3])[:SHOWN] if len(curves) > SHOWN else list(curves)
    fig, ax = plt.subplots(figsize=(6.4, 4.8))
    for name, recall, precision, ap in shown:
        ax.step(recall, precision, where="post", label=f"{name} (AP {ap:.3f})")
    ax.set(xlabel="recall", ylabel="precision", xlim=(0, 1.01), ylim=(0, 1.03),
           title=title or "precision-recall per class")
    if len(curves) > SHOWN:
        ax.text(0.01, 0.02, f"the {SHOWN} classes with the lowest AP, of {len(curves)}", fontsize=7,
                transform=ax.transAxes)
    if shown:
        ax.legend(fontsize=7, loc="lower left", bbox_to_anchor=(1.01, 0.0))
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)
