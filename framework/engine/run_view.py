"""A finished run as a notebook shows it: its summary table and figures, as one HTML fragment."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from ..plots.png import data_uri

# summary.json keys shown, in this order (the others stay in the file)
SHOWN = ("dataset", "backbone", "policy", "epochs", "best_val_accuracy", "best_epoch", "last_val_accuracy",
         "seconds", "images_per_second", "device", "precision", "trainable_params", "total_params")
FIGURES = {"curves.png": "training curves", "confusion.png": "confusion matrix (after tlf evaluate)"}
TEMPLATE = """<div class="tlf-run">
<table>
{% for key, value in rows %}<tr><th style="text-align:left">{{ key }}</th><td style="text-align:left">{{ value }}</td></tr>
{% endfor %}</table>
{% for alt, uri in figures %}<img src="{{ uri }}" alt="{{ alt }}" style="max-width:48%">
{% endfor %}<p>run directory: <code>{{ directory }}</code>{% if report %}; report: <code>{{ report }}</code>{% endif %}</p>
</div>"""


def _shown(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else str(value)


def run_html(directory: Path | None, summary: dict[str, Any] | None) -> str:
    """The summary table and the run directory's figures (inlined), or a line saying that
    this process has no finished run to show (a non-zero rank, an interrupted run)."""
    import jinja2
    if directory is None or summary is None:
        return "<p>tlf run: no summary in this process</p>"
    rows = [(key.replace("_", " "), _shown(summary[key])) for key in SHOWN if summary.get(key) is not None]
    figures = [(alt, uri) for name, alt in FIGURES.items() if (uri := data_uri(directory / name)) is not None]
    report = directory / "report.html"
    return jinja2.Environment(autoescape=True).from_string(TEMPLATE).render(
        rows=rows, figures=figures, directory=str(directory), report=str(report) if report.is_file() else None)
