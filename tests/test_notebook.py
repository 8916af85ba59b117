"""The quickstart notebook runs top to bottom in a fresh kernel, and a finished run shows itself
in a notebook as its summary table and figures (``_repr_html_``)."""
from __future__ import annotations

import base64
import os
import re
from pathlib import Path

import pytest

from tlf.engine.run_view import run_html

NOTEBOOK = Path(__file__).resolve().parents[1] / "examples" / "notebooks" / "quickstart.ipynb"


def _png(path: Path, colour: tuple[int, int, int]) -> bytes:
    from PIL import Image
    Image.new("RGB", (8, 8), colour).save(path)
    return path.read_bytes()


def test_a_run_shows_its_summary_and_inlined_figures_escaped(tmp_path: Path) -> None:
    curves = _png(tmp_path / "curves.png", (255, 0, 0))
    summary = {"dataset": "folder:<script>alert(1)</script>", "best_val_accuracy": 0.97222, "epochs": 3,
               "total_params": 3374851, "seconds": 29.77, "not_shown": "x"}
    html = run_html(tmp_path, summary)
    cells = re.findall(r"<th[^>]*>(.*?)</th><td[^>]*>(.*?)</td>", html)
    assert cells == [("dataset", "folder:&lt;script&gt;alert(1)&lt;/script&gt;"), ("epochs", "3"),
                     ("best val accuracy", "0.9722"), ("seconds", "29.77"), ("total params", "3,374,851")]
    images = re.findall(r'<img src="data:image/png;base64,([^"]+)" alt="([^"]+)"', html)
    assert [(base64.b64decode(data), alt) for data, alt in images] == [(curves, "training curves")]
    assert "report:" not in html
    (tmp_path / "report.html").write_text("<html></html>")
    _png(tmp_path / "confusion.png", (0, 0, 255))
    html = run_html(tmp_path, summary)
    assert len(re.findall(r"<img ", html)) == 2 and f"report: <code>{tmp_path / 'report.html'}</code>" in html


def test_a_run_without_a_summary_says_so() -> None:
    assert run_html(None, None) == "<p>tlf run: no summary in this process</p>"


def test_the_quickstart_notebook_executes_and_shows_the_run_figures_and_predictions(tmp_path: Path) -> None:
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")  # the kernel inherits it
    nbclient.NotebookClient(notebook, timeout=600, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = [output for cell in notebook.cells if cell.cell_type == "code" for output in cell.outputs]
    shown = [o["data"]["text/html"] for o in outputs if o.output_type == "execute_result" and "text/html" in o["data"]]
    assert len(shown) == 1 and "best val accuracy" in shown[0] and 'alt="training curves"' in shown[0]
    assert sum("image/png" in o.get("data", {}) for o in outputs) == 2  # the confusion matrix and the top losses
    printed = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert "parity ok: True" in printed
    assert len(re.findall(r"true \w+ +predicted \w+ +p=0\.\d\d", printed)) == 6
    assert len(list(tmp_path.glob("runs/*/model.onnx"))) == 1
