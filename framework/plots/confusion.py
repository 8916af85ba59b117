"""Confusion matrices as figures (for loggers) and PNG files."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from .png import pyplot, save_figure

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def plot_confusion(cm: list[list[int]], classes: list[str], path: Path, title: str = "") -> None:
    """The confusion matrix ``cm[true][predicted]`` as a PNG file."""
    fig = confusion_figure(cm, classes, title)
    save_figure(fig, path)
    pyplot().close(fig)


def confusion_figure(cm: list[list[int]], classes: list[str], title: str = "") -> Figure:
    """The confusion matrix ``cm[true][predicted]`` as a matplotlib figure (counts written in
    the cells up to 30 classes); the caller saves or logs it, then closes it."""
    plt = pyplot()
    n = len(classes)
    size = min(2 + 0.5 * n, 16)
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(cm, cmap="Blues")
    ax.set_xticks(range(n), classes, rotation=45, ha="right")
    ax.set_yticks(range(n), classes)
    ax.set(xlabel="predicted", ylabel="true", title=title or "confusion matrix")
    if n <= 30:
        peak = max(max(row) for row in cm) or 1
        for i in range(n):
            for j in range(n):
                ax.text(j, i, cm[i][j], ha="center", va="center", color="white" if cm[i][j] > peak / 2 else "black")
    return fig
