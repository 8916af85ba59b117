"""Terminal tables of what a model got wrong (``tlf evaluate``): per-class accuracy with each
class's most common mistake, and the top losses; a multi-label evaluation's most-wrong label sets."""
from __future__ import annotations

from typing import Any


def print_errors(console: Any, report: dict) -> None:
    """Print the per-class accuracy and top-loss tables of an evaluation ``report``."""
    from rich.table import Table

    confused: dict[str, dict] = {}
    for pair in report.get("most_confused", []):
        confused.setdefault(pair["true"], pair)
    table = Table(title="per-class accuracy (rows: true class)")
    for column, justify in (("class", "left"), ("accuracy", "right"), ("images", "right"),
                            ("most often taken for", "left")):
        table.add_column(column, justify=justify)
    for row in report.get("per_class_accuracy", []):
        pair = confused.get(row["class"])
        table.add_row(row["class"], "–" if row["accuracy"] is None else f"{row['accuracy']:.3f}", str(row["images"]),
                      f"{pair['predicted']} ({pair['count']})" if pair else "")
    console.print(table)
    losses = Table(title=f"top {len(report.get('top_losses', []))} losses")
    for column, justify in (("image", "left"), ("true", "left"), ("predicted", "left"), ("prob", "right"),
                            ("loss", "right")):
        losses.add_column(column, justify=justify, overflow="fold")
    for row in report.get("top_losses", []):
        losses.add_row(row["image"], row["true"], row["predicted"], f"{row['probability']:.1%}", f"{row['loss']:.3f}")
    console.print(losses)
    if "label_errors" in report:
        console.print(f"{report['label_errors']} likely label error(s) listed in label_errors.csv", highlight=False)


def print_wrong_sets(console: Any, report: dict) -> None:
    """Print the most-wrong label sets of a multi-label evaluation ``report``."""
    from rich.table import Table

    table = Table(title=f"{len(report.get('most_wrong', []))} most wrong label sets")
    for column, justify in (("image", "left"), ("true", "left"), ("predicted", "left"), ("wrong", "right"),
                            ("loss", "right")):
        table.add_column(column, justify=justify, overflow="fold")
    for row in report.get("most_wrong", []):
        table.add_row(row["image"], row["true"], row["predicted"], str(row["wrong_labels"]), f"{row['loss']:.3f}")
    console.print(table)
