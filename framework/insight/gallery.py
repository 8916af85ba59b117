"""Gallery PNGs: tiles of images (each with its Grad-CAM overlay beside it) and captions."""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..plots.png import pyplot, save_figure
from .gradcam import overlay

COLUMNS = 4


@dataclass
class Tile:
    image: np.ndarray  # HxWx3 uint8, as the model saw it
    cam: np.ndarray | None  # HxW in [0, 1], or None
    caption: str


def shorten(text: str, width: int = 32) -> str:
    return text if len(text) <= width else "…" + text[-(width - 1):]


def plot_gallery(tiles: list[Tile], path: Path, title: str, cam_of: str = "the predicted class") -> None:
    """A grid of ``tiles`` (image | Grad-CAM of ``cam_of``), captions above each, ``title`` on top."""
    plt = pyplot()
    rows = max(1, math.ceil(len(tiles) / COLUMNS))
    cols = min(COLUMNS, max(1, len(tiles)))
    wide = any(t.cam is not None for t in tiles)
    fig, axes = plt.subplots(rows, cols, figsize=(cols * (3.2 if wide else 1.9), rows * 2.3), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, tile in zip(axes.flat, tiles):
        picture = tile.image if tile.cam is None else np.hstack([tile.image, overlay(tile.image, tile.cam)])
        ax.imshow(picture)
        ax.set_title(tile.caption, fontsize=7)
    if not tiles:
        axes[0, 0].text(0.5, 0.5, "no images", ha="center", va="center")
    fig.suptitle(title + (f"  (left: image, right: Grad-CAM of {cam_of})" if wide else ""), fontsize=10)
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)
