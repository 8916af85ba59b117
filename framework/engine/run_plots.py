"""Training curves and confusion matrices as PNG (matplotlib, no display needed)."""
from __future__ import annotations

import io
from pathlib import Path
from typing import TYPE_CHECKING

from ..safe_files import atomic_write

if TYPE_CHECKING:
    from matplotlib.figure import Figure


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
    """Loss and accuracy per epoch, train and validation (and the EMA weights' when the run
    keeps them), and the learning rate the epoch ended at."""
    plt = figure()
    epochs = [r["epoch"] for r in rows]
    fig, (ax_loss, ax_acc, ax_lr) = plt.subplots(1, 3, figsize=(15, 4))
    ax_loss.plot(epochs, [r["train_loss"] for r in rows], "o-", label="train")
    ax_loss.plot(epochs, [r["val_loss"] for r in rows], "o-", label="val")
    ax_loss.set(xlabel="epoch", ylabel="loss", title="loss")
    ax_acc.plot(epochs, [r["train_acc"] for r in rows], "o-", label="train")
    ax_acc.plot(epochs, [r["val_acc"] for r in rows], "o-", label="val")
    if any("ema_val_acc" in r for r in rows):
        ax_loss.plot(epochs, [r.get("ema_val_loss") for r in rows], "o--", label="val (EMA)")
        ax_acc.plot(epochs, [r.get("ema_val_acc") for r in rows], "o--", label="val (EMA)")
    ax_acc.set(xlabel="epoch", ylabel="accuracy", title="accuracy", ylim=(0, 1.02))
    ax_lr.plot(epochs, [r["lr"] for r in rows], "o-", label="largest group lr")
    ax_lr.set(xlabel="epoch", ylabel="learning rate", title="learning rate (end of epoch)")
    if all(r["lr"] > 0 for r in rows):
        ax_lr.set_yscale("log")
    for ax in (ax_loss, ax_acc, ax_lr):
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(title)
    save_figure(fig, path)
    plt.close(fig)


def plot_confusion(cm: list[list[int]], classes: list[str], path: Path, title: str = "") -> None:
    fig = confusion_figure(cm, classes, title)
    save_figure(fig, path)
    figure().close(fig)


def confusion_figure(cm: list[list[int]], classes: list[str], title: str = "") -> Figure:
    """The confusion matrix ``cm[true][predicted]`` as a matplotlib figure (counts written in
    the cells up to 30 classes); the caller saves or logs it, then closes it."""
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
    return fig


def plot_lr_find(finding, path: Path) -> None:
    """The lr range test: smoothed loss against lr (log scale), the suggestion marked."""
    plt = figure()
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(finding.lrs, finding.losses)
    ax.axvline(finding.suggestion, color="tab:red", linestyle="--", label=f"suggested {finding.suggestion:.1e}")
    ax.set(xscale="log", xlabel="learning rate", ylabel="smoothed training loss", title="lr range test")
    ax.grid(alpha=0.3)
    ax.legend()
    save_figure(fig, path)
    plt.close(fig)
