"""Training curves and confusion matrices as PNG (matplotlib, no display needed)."""
from __future__ import annotations

import io
from pathlib import Path

from ..rundir import atomic_write


def figure():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def save_figure(fig, path: Path) -> None:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    atomic_write(path, lambda f: f.write(buf.getvalue()), mode="wb")


def plot_curves(rows: list[dict], path: Path, title: str = "") -> None:
    """Loss and accuracy per epoch, train and validation."""
    plt = figure()
    epochs = [r["epoch"] for r in rows]
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4))
    ax_loss.plot(epochs, [r["train_loss"] for r in rows], "o-", label="train")
    ax_loss.plot(epochs, [r["val_loss"] for r in rows], "o-", label="val")
    ax_loss.set(xlabel="epoch", ylabel="loss", title="loss")
    ax_acc.plot(epochs, [r["train_acc"] for r in rows], "o-", label="train")
    ax_acc.plot(epochs, [r["val_acc"] for r in rows], "o-", label="val")
    ax_acc.set(xlabel="epoch", ylabel="accuracy", title="accuracy", ylim=(0, 1.02))
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(title)
    save_figure(fig, path)
    plt.close(fig)


def plot_confusion(cm: list[list[int]], classes: list[str], path: Path, title: str = "") -> None:
    plt = figure()
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
    save_figure(fig, path)
    plt.close(fig)
