"""A run's curves (loss, the task's metric and lr per epoch) and the lr range test, as PNG."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from .png import pyplot, save_figure


def plot_curves(rows: list[dict], path: Path, title: str = "", metric: str = "acc", name: str = "accuracy") -> None:
    """Loss and the task's ``metric`` (row keys ``train_<metric>``, ``val_<metric>``; called ``name``)
    per epoch, train and validation (and the EMA weights' when the run keeps them), and the
    learning rate the epoch ended at."""
    plt = pyplot()
    epochs = [r["epoch"] for r in rows]
    fig, (ax_loss, ax_acc, ax_lr) = plt.subplots(1, 3, figsize=(15, 4))
    ax_loss.plot(epochs, [r["train_loss"] for r in rows], "o-", label="train")
    ax_loss.plot(epochs, [r["val_loss"] for r in rows], "o-", label="val")
    ax_loss.set(xlabel="epoch", ylabel="loss", title="loss")
    ax_acc.plot(epochs, [r[f"train_{metric}"] for r in rows], "o-", label="train")
    ax_acc.plot(epochs, [r[f"val_{metric}"] for r in rows], "o-", label="val")
    if any(f"ema_val_{metric}" in r for r in rows):
        ax_loss.plot(epochs, [r.get("ema_val_loss") for r in rows], "o--", label="val (EMA)")
        ax_acc.plot(epochs, [r.get(f"ema_val_{metric}") for r in rows], "o--", label="val (EMA)")
    ax_acc.set(xlabel="epoch", ylabel=name, title=name, ylim=(0, 1.02))
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


def plot_lr_find(finding: Any, path: Path) -> None:
    """The lr range test (a :class:`tlf.engine.lr_find.LrFinding`): smoothed loss against lr (log
    scale), the suggestion marked."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(finding.lrs, finding.losses)
    ax.axvline(finding.suggestion, color="tab:red", linestyle="--", label=f"suggested {finding.suggestion:.1e}")
    ax.set(xscale="log", xlabel="learning rate", ylabel="smoothed training loss", title="lr range test")
    ax.grid(alpha=0.3)
    ax.legend()
    save_figure(fig, path)
    plt.close(fig)
