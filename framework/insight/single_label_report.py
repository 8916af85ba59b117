"""The report.html sections of a single-label evaluation: the confusion matrix (above the final
metrics), per-class accuracy, precision, recall and F1, the top losses and the most confused pairs."""
from __future__ import annotations

from pathlib import Path

from ..plots.png import data_uri
from ..task import ReportSection

CONFUSION = """<section id="confusion"><h2>Confusion matrix</h2>
{% if evaluation.confusion_shown %}<p class="warn">Showing {{ evaluation.confusion_shown }}; evaluation.json has the whole matrix.</p>{% endif %}
{% if image %}<img alt="confusion matrix" src="{{ image }}">{% endif %}</section>
"""

PER_CLASS = """<section id="per-class"><h2>Per class</h2><div class="scroll"><table>
<tr><th>class</th><th>accuracy</th><th>precision</th><th>recall</th><th>F1</th><th>images</th></tr>
{% for row in per_class %}<tr><td>{{ row.class }}</td><td class="n">{{ row.accuracy }}</td><td class="n">{{ "%.3f"|format(row.precision) }}</td>
<td class="n">{{ "%.3f"|format(row.recall) }}</td><td class="n">{{ "%.3f"|format(row.f1) }}</td><td class="n">{{ row.support }}</td></tr>{% endfor %}
</table></div></section>
"""

TOP_LOSSES = """<section id="top-losses"><h2>Top losses</h2>
<p>The images the model got most wrong, highest loss first, with Grad-CAM on conv5 for the predicted class.</p>
{% if image %}<img alt="top-loss gallery" src="{{ image }}">{% endif %}
<table id="top-loss-table"><tr><th>#</th><th>image</th><th>true</th><th>predicted</th><th>probability</th><th>loss</th></tr>
{% for row in evaluation.top_losses %}<tr><td class="n">{{ loop.index }}</td><td>{{ row.image }}</td><td>{{ row.true }}</td><td>{{ row.predicted }}</td>
<td class="n">{{ "%.3f"|format(row.probability) }}</td><td class="n">{{ "%.4f"|format(row.loss) }}</td></tr>{% endfor %}</table></section>
"""

CONFUSED = """<section id="confused"><h2>Most confused</h2>
{% if evaluation.most_confused %}<table><tr><th>true</th><th>predicted as</th><th>images</th></tr>
{% for pair in evaluation.most_confused %}<tr><td>{{ pair.true }}</td><td>{{ pair.predicted }}</td><td class="n">{{ pair.count }}</td></tr>{% endfor %}</table>
{% if image %}<img alt="most confident mistake per pair" src="{{ image }}">{% endif %}
{% else %}<p>No mistakes on the validation set.</p>{% endif %}</section>
"""


def report_sections(evaluation: dict, run_dir: Path) -> list[ReportSection]:
    """The sections of a single-label run's evaluation.json (and its figures in ``run_dir``)."""
    confusion = "confusion_top.png" if evaluation.get("confusion_shown") else "confusion.png"
    accuracy = {r["class"]: r["accuracy"] for r in evaluation.get("per_class_accuracy", [])}
    per_class = [{**row, "accuracy": "–" if accuracy.get(row["class"]) is None else f"{accuracy[row['class']]:.3f}"}
                 for row in evaluation.get("per_class", [])]
    return [ReportSection("confusion", "confusion", CONFUSION, {"image": data_uri(run_dir / confusion)},
                          before_metrics=True),
            ReportSection("per-class", "per class", PER_CLASS, {"per_class": per_class}),
            ReportSection("top-losses", "top losses", TOP_LOSSES,
                          {"image": data_uri(run_dir / "top_losses.png", photo=True)}),
            ReportSection("confused", "most confused", CONFUSED,
                          {"image": data_uri(run_dir / "confused.png", photo=True)})]
