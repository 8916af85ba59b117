"""comparison.png: validation accuracy per epoch of every strategy, and final accuracy as bars."""
from __future__ import annotations

from pathlib import Path

from ..plots.png import pyplot, save_figure
from .results import Comparison

LINESTYLES = ("-", "--", ":", "-.")


def plot_comparison(comparison: Comparison, path: Path) -> None:
    """Left: mean validation accuracy per epoch (band: min..max over seeds); right: last-epoch
    validation accuracy, mean with sample-std error bars, grouped by backbone, one colour per policy."""
    plt = pyplot()
    from matplotlib.ticker import MaxNLocator
    policies, backbones, datasets = comparison.policies, comparison.backbones, comparison.datasets
    colors = {p: plt.get_cmap("tab10")(i % 10) for i, p in enumerate(policies)}
    styles = {b: LINESTYLES[i % len(LINESTYLES)] for i, b in enumerate(backbones)}
    width = max(11.0, 6 + 0.45 * len(comparison.groups))
    fig, (ax_curve, ax_bar) = plt.subplots(1, 2, figsize=(width, 4.5), gridspec_kw={"width_ratios": [3, 2]})

    for group in comparison.groups:
        epochs, mean, low, high = group.mean_curve()
        label = " · ".join([*([group.dataset] if len(datasets) > 1 else []),
                            *([group.backbone] if len(backbones) > 1 else []), group.policy])
        ax_curve.plot(epochs, mean, marker="o", markersize=3, color=colors[group.policy],
                      linestyle=styles[group.backbone], label=label)
        if len(group.runs) > 1:
            ax_curve.fill_between(epochs, low, high, color=colors[group.policy], alpha=0.15)
    ax_curve.set(xlabel="epoch", ylabel="validation accuracy", title="validation accuracy", ylim=(0, 1.02))
    ax_curve.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax_curve.grid(alpha=0.3)
    ax_curve.legend(fontsize="small")

    columns = [(d, b) for d in datasets for b in backbones
               if any(g.dataset == d and g.backbone == b for g in comparison.groups)]
    bar = 0.8 / len(policies)
    for group in comparison.groups:
        stats = group.stats.get("last_val_accuracy")
        if not stats:
            continue
        x = columns.index((group.dataset, group.backbone)) + (policies.index(group.policy) - (len(policies) - 1) / 2) * bar
        ax_bar.bar(x, stats["mean"], bar, yerr=stats["std"], capsize=3, color=colors[group.policy],
                   label=group.policy)
        ax_bar.text(x, stats["mean"] + (stats["std"] or 0) + 0.015, f"{stats['mean']:.3f}", ha="center", va="bottom",
                    fontsize="x-small", rotation=90)
    ax_bar.set_xticks(range(len(columns)), [" · ".join(c if len(datasets) > 1 else c[1:]) for c in columns],
                      rotation=20 if len(columns) > 2 else 0)
    ax_bar.set(ylabel="validation accuracy", title="final (last-epoch) validation accuracy", ylim=(0, 1.3),
               yticks=[0, 0.2, 0.4, 0.6, 0.8, 1.0])
    ax_bar.grid(alpha=0.3, axis="y")
    handles, labels = ax_bar.get_legend_handles_labels()
    unique = dict(zip(labels, handles))
    ax_bar.legend(unique.values(), unique.keys(), fontsize="small", loc="upper center", ncol=min(len(unique), 2))
    fig.suptitle(comparison.title())
    save_figure(fig, path)
    plt.close(fig)
