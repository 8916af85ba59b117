"""A comparison's files: comparison.json, .md, .csv and .png in its folder, written from a
:class:`~tlf.experiments.results.Comparison` (``tlf compare``) or rebuilt from finished runs
(``tlf report``)."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Sequence

from ..safe_files import atomic_write
from .comparison_plots import plot_comparison
from .results import Comparison, find_run_dirs, load_results

FILES = ("comparison.json", "comparison.md", "comparison.csv", "comparison.png")


def write_comparison(comparison: Comparison, out: str | Path) -> list[Path]:
    """comparison.json, .md, .csv and .png in ``out`` (kept in ``comparison.directory``); returns their paths."""
    out = Path(out)
    texts = {"comparison.json": json.dumps(comparison.to_dict(), indent=2) + "\n", "comparison.md": comparison.markdown(),
             "comparison.csv": comparison.csv()}
    for name, text in texts.items():
        atomic_write(out / name, lambda f, text=text: f.write(text))
    plot_comparison(comparison, out / "comparison.png")
    comparison.directory = out
    return [out / name for name in FILES]


def report(paths: Sequence[str | Path], out: str | Path | None = None) -> Comparison:
    """Rebuild the comparison files from existing runs (run directories, folders of them, or
    comparison folders). ``out`` defaults to the comparison folder, else the runs' common parent."""
    found, skipped = find_run_dirs(paths)
    comparison = load_results(found, settings={"report_of": [str(p) for p in paths],
                                               "skipped_unfinished": [str(p) for p in skipped]})
    if out is None:
        single = Path(paths[0]) if len(paths) == 1 else None
        if single is not None and (single / "runs").is_dir():
            out = single
        else:
            out = Path(os.path.commonpath([str(d.resolve().parent) for d in found]))
    write_comparison(comparison, out)
    return comparison
