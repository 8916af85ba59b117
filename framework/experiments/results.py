"""Comparison results: runs read back from their directories, grouped by (dataset, backbone,
policy) and summarised as mean ± std over seeds, as JSON, Markdown and CSV text."""
from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from ..errors import TlfError
from ..rundir import read_json, read_run_config

# summary.json field -> (column title, kind of value)
METRICS = {
    "best_val_accuracy": ("best val acc", "acc"),
    "test_accuracy": ("test acc", "acc"),  # the best checkpoint on the test split: summary.json "test"
    "last_val_accuracy": ("last val acc", "acc"),
    "last_train_accuracy": ("train acc", "acc"),
    "trainable_params": ("trainable params", "count"),
    "epochs": ("epochs", "int"),
    "seconds": ("wall time (s)", "float"),
    "images_per_second": ("images/s", "float"),
}
OPTIONAL = ("test_accuracy",)  # a column only when some run has the figure (data with a test split)


def summary_value(summary: dict, key: str) -> Any:
    """A run's figure for the column ``key`` of :data:`METRICS` (None when it has none); the test
    figure is the task's metric (``best_metric`` without ``val_``) in summary.json's ``test``."""
    if key == "test_accuracy":
        return (summary.get("test") or {}).get(summary.get("best_metric", "val_acc").removeprefix("val_"))
    return summary.get(key)


@dataclass
class ComparedRun:
    """One finished run as the comparison sees it."""

    directory: Path
    dataset: str
    backbone: str
    policy: str
    seed: int
    summary: dict
    curve: list[tuple[int, float]]  # (epoch, val accuracy)

    @property
    def key(self) -> tuple[str, str, str]:
        return self.dataset, self.backbone, self.policy


def read_result(run_dir: str | Path) -> ComparedRun:
    """A finished run directory: config.yaml, summary.json and metrics.jsonl."""
    run_dir = Path(run_dir)
    config = read_run_config(run_dir)
    if not (run_dir / "summary.json").is_file():
        raise TlfError(f"{run_dir} has not finished (no summary.json)",
                       hint=f"finish it with 'tlf train --resume {run_dir}', or leave it out")
    metrics = run_dir / "metrics.jsonl"
    try:
        summary = read_json(run_dir / "summary.json")
        rows = [json.loads(line) for line in metrics.read_text().splitlines() if line.strip()] if metrics.is_file() else []
    except ValueError as exc:
        raise TlfError(f"{run_dir} has a damaged summary.json or metrics.jsonl: {exc}",
                       hint="leave that run out, or delete its summary.json and resume it with 'tlf train --resume'") from None
    return ComparedRun(run_dir, config.dataset, config.backbone, summary.get("policy") or config.policy,
                     config.seed, summary, [(int(r["epoch"]), float(r["val_acc"])) for r in rows])


def find_run_dirs(paths: Sequence[str | Path]) -> tuple[list[Path], list[Path]]:
    """Finished run directories among ``paths`` -> (finished, unfinished skipped).

    A path is a run directory (has config.yaml), a comparison folder (has runs/) or a folder
    of run directories (taken in the order they started); run directories named explicitly
    must have finished.
    """
    found: list[Path] = []
    skipped: list[Path] = []
    for path in map(Path, paths):
        if not path.is_dir():
            raise TlfError(f"{path} is not a directory", hint="pass run directories or a comparison folder")
        if (path / "config.yaml").is_file():
            found.append(path)
            continue
        folder = path / "runs" if (path / "runs").is_dir() else path
        children = sorted((p for p in folder.iterdir() if not p.name.startswith(".") and (p / "config.yaml").is_file()),
                          key=lambda p: ((p / "config.yaml").stat().st_mtime, p.name))  # the order they started
        if not children:
            raise TlfError(f"{path} holds no run directories",
                           hint="pass folders made by 'tlf train' or 'tlf compare'")
        for child in children:
            (found if (child / "summary.json").is_file() else skipped).append(child)
    return list(dict.fromkeys(found)), skipped


def _stats(values: list[float]) -> dict[str, float | None]:
    n = len(values)
    mean = sum(values) / n
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else None
    return {"mean": mean, "std": std}


@dataclass
class Group:
    """All seeds of one (dataset, backbone, policy): mean and sample std (n-1) of each metric."""

    dataset: str
    backbone: str
    policy: str
    runs: list[ComparedRun]
    stats: dict[str, dict[str, float | None]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for key in METRICS:
            values = [float(v) for r in self.runs if (v := summary_value(r.summary, key)) is not None]
            if values:
                self.stats[key] = _stats(values)

    def mean_curve(self) -> tuple[list[int], list[float], list[float], list[float]]:
        """Epochs and the mean, min and max validation accuracy over seeds at each epoch."""
        by_epoch: dict[int, list[float]] = {}
        for run in self.runs:
            for epoch, acc in run.curve:
                by_epoch.setdefault(epoch, []).append(acc)
        epochs = sorted(by_epoch)
        return (epochs, [sum(by_epoch[e]) / len(by_epoch[e]) for e in epochs],
                [min(by_epoch[e]) for e in epochs], [max(by_epoch[e]) for e in epochs])

    def to_dict(self) -> dict[str, Any]:
        return {"dataset": self.dataset, "backbone": self.backbone, "policy": self.policy,
                "seeds": [r.seed for r in self.runs], "runs": [str(r.directory) for r in self.runs], **self.stats}


def _format(value: float | None, kind: str) -> str:
    if value is None:
        return "–"
    if kind == "acc":
        return f"{value:.3f}"
    if kind == "count":
        return f"{value / 1e6:.2f}M" if value >= 1e6 else f"{value / 1e3:.1f}k" if value >= 1e3 else f"{value:.0f}"
    if kind == "int":
        return f"{value:.0f}" if value == int(value) else f"{value:.1f}"
    return f"{value:.1f}" if value < 100 else f"{value:.0f}"


def _cell(stats: dict | None, kind: str) -> str:
    if not stats:
        return "–"
    text = _format(stats["mean"], kind)
    if stats["std"] is not None and kind in ("acc", "float"):
        text += f" ± {_format(stats['std'], kind)}"
    return text


@dataclass
class Comparison:
    """Runs grouped by (dataset, backbone, policy), in the order the runs were given."""

    runs: list[ComparedRun]
    settings: dict[str, Any] = field(default_factory=dict)
    groups: list[Group] = field(init=False)
    directory: Path | None = field(init=False, default=None)  # where write_comparison put the files

    def __post_init__(self) -> None:
        keyed: dict[tuple[str, str, str], list[ComparedRun]] = {}
        for run in self.runs:
            keyed.setdefault(run.key, []).append(run)
        self.groups = [Group(*key, sorted(runs, key=lambda r: r.seed)) for key, runs in keyed.items()]

    @property
    def datasets(self) -> list[str]:
        return list(dict.fromkeys(g.dataset for g in self.groups))

    @property
    def backbones(self) -> list[str]:
        return list(dict.fromkeys(g.backbone for g in self.groups))

    @property
    def policies(self) -> list[str]:
        return list(dict.fromkeys(g.policy for g in self.groups))

    @property
    def metrics(self) -> list[str]:
        """The columns of :data:`METRICS` shown: the optional ones only when some run has them."""
        return [m for m in METRICS if m not in OPTIONAL or any(m in g.stats for g in self.groups)]

    def _key_columns(self) -> list[str]:
        return [c for c, many in (("dataset", len(self.datasets) > 1), ("backbone", len(self.backbones) > 1)) if many]

    def rows(self) -> tuple[list[str], list[list[str]]]:
        """Header and formatted rows of the main table (one row per strategy)."""
        keys = self._key_columns()
        header = [*keys, "policy", "seeds", *(METRICS[m][0] for m in self.metrics)]
        rows = [[*(getattr(g, k) for k in keys), g.policy, str(len(g.runs)),
                 *(_cell(g.stats.get(m), METRICS[m][1]) for m in self.metrics)] for g in self.groups]
        return header, rows

    def grid(self) -> tuple[list[str], list[list[str]]] | None:
        """Backbones x policies of best val accuracy, when there are several backbones."""
        if len(self.backbones) < 2:
            return None
        cells = {(g.dataset, g.backbone, g.policy): _cell(g.stats.get("best_val_accuracy"), "acc") for g in self.groups}
        keys = [(d, b) for d in self.datasets for b in self.backbones if any((d, b, p) in cells for p in self.policies)]
        header = (["dataset"] if len(self.datasets) > 1 else []) + ["backbone", *self.policies]
        rows = [([d] if len(self.datasets) > 1 else []) + [b, *(cells.get((d, b, p), "–") for p in self.policies)]
                for d, b in keys]
        return header, rows

    def note(self) -> str | None:
        """Which strategies trained on cached frozen features (their speed means something else)."""
        cached = [" · ".join([g.backbone, g.policy] if len(self.backbones) > 1 else [g.policy])
                  for g in self.groups if any(r.summary.get("feature_cache") for r in g.runs)]
        if not cached:
            return None
        return (f"{', '.join(cached)}: trained on cached outputs of the frozen stages (--feature-cache): wall "
                "time includes the one-off pass over the frozen stages, images/s covers the trainable part.")

    def title(self) -> str:
        seeds = sorted({r.seed for r in self.runs})
        return f"{', '.join(self.datasets)} · {len(self.runs)} runs · seeds {', '.join(map(str, seeds))}"

    def markdown(self) -> str:
        def table(header: list[str], rows: list[list[str]]) -> str:
            align = ["---" if i < len(header) - len(self.metrics) - 1 else "---:" for i in range(len(header))]
            lines = [header, align, *rows]
            return "\n".join("| " + " | ".join(line) + " |" for line in lines)

        parts = [f"# Strategy comparison: {self.title()}",
                 "Mean ± sample standard deviation over seeds (no ± with one seed). "
                 "Accuracies on the validation split (test acc: the checkpoint picked on validation, scored once "
                 "on the held-out test split, when the data has one); wall time is the whole run's (summary.json `seconds`: "
                 "set-up, feature cache, training and validation).",
                 table(*self.rows())]
        if self.note():
            parts.append(self.note())
        grid = self.grid()
        if grid:
            head, body = grid
            parts.append("## Best validation accuracy, backbone × policy")
            parts.append("\n".join("| " + " | ".join(line) + " |" for line in [head, ["---"] * len(head), *body]))
        parts.append("![validation accuracy](comparison.png)")
        return "\n\n".join(parts) + "\n"

    def csv(self) -> str:
        buf = io.StringIO()
        writer = csv.writer(buf)
        writer.writerow(["dataset", "backbone", "policy", "seeds",
                         *(f"{m}_{s}" for m in self.metrics for s in ("mean", "std"))])
        for g in self.groups:
            values = [g.stats.get(m, {}).get(s) for m in self.metrics for s in ("mean", "std")]
            writer.writerow([g.dataset, g.backbone, g.policy, len(g.runs), *("" if v is None else v for v in values)])
        return buf.getvalue()

    def to_dict(self) -> dict[str, Any]:
        return {"settings": self.settings, "groups": [g.to_dict() for g in self.groups],
                "runs": [{"run_dir": str(r.directory), "dataset": r.dataset, "backbone": r.backbone,
                          "policy": r.policy, "seed": r.seed, "summary": r.summary,
                          "val_accuracy": [acc for _, acc in r.curve]} for r in self.runs]}

    def rich_tables(self) -> list[Any]:
        """The tables for a terminal (rich)."""
        from rich import box
        from rich.table import Table
        header, rows = self.rows()
        main = Table(title=self.title(), caption=self.note(), box=box.SIMPLE_HEAD)
        for i, column in enumerate(header):
            key = i < len(header) - len(self.metrics) - 1
            main.add_column(column, justify="left" if key else "right", no_wrap=key)
        for row in rows:
            main.add_row(*row)
        tables = [main]
        grid = self.grid()
        if grid:
            head, body = grid
            table = Table(title="best val accuracy, backbone × policy", box=box.SIMPLE_HEAD)
            for column in head:
                table.add_column(column)
            for row in body:
                table.add_row(*row)
            tables.append(table)
        return tables


def load_results(run_dirs: Sequence[str | Path], settings: dict[str, Any] | None = None) -> Comparison:
    """A :class:`Comparison` of finished run directories."""
    if not run_dirs:
        raise TlfError("no finished runs to compare", hint="pass run directories that have a summary.json")
    return Comparison([read_result(d) for d in run_dirs], settings or {})
