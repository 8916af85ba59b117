"""The per-image part of a multi-label ``tlf evaluate`` and its report.html sections:
predictions.csv (the true and predicted label sets, one probability column per class), the
images whose label sets are most wrong (with Grad-CAM of each predicted label), the
precision-recall curve of each class."""
from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

from tlf.insight.evaluation import data_summary
from tlf.insight.gallery import Tile, plot_gallery, shorten
from tlf.insight.gradcam import grad_cam
from tlf.insight.predictions import write_predictions
from tlf.plots.png import data_uri
from tlf.plots.pr_curves import plot_pr_curves
from tlf.safe_files import atomic_write
from tlf.task import ReportSection
from tlf.task_outputs import label_sets, sigmoid

from .multi_label_metrics import pr_curve

CAMS_PER_IMAGE = 3  # predicted labels explained per image in the most-wrong gallery


@dataclass
class SetPredictions:
    """One row per evaluated image, in the loader's order."""

    images: list[str]
    classes: list[str]
    labels: np.ndarray  # bool N x C: the true sets
    probabilities: np.ndarray  # float N x C (sigmoid)
    predicted: np.ndarray  # bool N x C: probabilities at or above the thresholds
    losses: np.ndarray  # float N: mean binary cross-entropy over the classes

    @classmethod
    def from_logits(cls, logits: np.ndarray, labels: np.ndarray, images: Sequence[str], classes: list[str],
                    thresholds: Sequence[float]) -> SetPredictions:
        logits, truth = np.asarray(logits, dtype=np.float64), np.asarray(labels) > 0.5
        losses = (np.logaddexp(0, logits) - logits * truth).mean(axis=1) if len(logits) else np.zeros(0)
        probs = sigmoid(logits)
        return cls(list(images), list(classes), truth, probs, label_sets(probs, thresholds), losses)

    @property
    def wrong(self) -> np.ndarray:
        """Labels missed or added, per image."""
        return (self.predicted != self.labels).sum(axis=1)

    def names(self, row: np.ndarray) -> str:
        """A label set as text: the class names separated by a space (the table format's)."""
        return " ".join(c for c, on in zip(self.classes, row) if on)

    def row(self, i: int) -> dict:
        return {"index": i, "image": self.images[i], "true": self.names(self.labels[i]),
                "predicted": self.names(self.predicted[i]), "wrong_labels": int(self.wrong[i]),
                "loss": float(self.losses[i]), "correct": bool(self.wrong[i] == 0)}

    def most_wrong(self, k: int) -> list[int]:
        """The ``k`` images with the most wrong labels (then the highest loss, then the lower index)."""
        order = np.lexsort((np.arange(len(self.losses)), -self.losses, -self.wrong))
        return [int(i) for i in order[:k] if self.wrong[i] > 0]

    def write_csv(self, path: Path) -> None:
        """predictions.csv: index, image, true, predicted, correct, wrong_labels, loss, then ``p_<class>`` per class."""
        buf = io.StringIO()
        writer = csv.writer(buf)
        writer.writerow(["index", "image", "true", "predicted", "correct", "wrong_labels", "loss",
                         *(f"p_{c}" for c in self.classes)])
        for i in range(len(self.images)):
            r = self.row(i)
            writer.writerow([i, r["image"], r["true"], r["predicted"], int(r["correct"]), r["wrong_labels"],
                             f"{r['loss']:.6g}", *(f"{p:.6g}" for p in self.probabilities[i])])
        atomic_write(path, lambda f: f.write(buf.getvalue()), mode="w")

    def write_jsonl(self, path: Path) -> None:
        """predictions.jsonl: the same rows, probabilities by class."""
        lines = [json.dumps({**self.row(i), "probabilities": dict(zip(self.classes, map(float, self.probabilities[i])))})
                 for i in range(len(self.images))]
        atomic_write(path, lambda f: f.write("".join(line + "\n" for line in lines)))


def analyse(report: dict, logits: np.ndarray, labels: np.ndarray, images: Any, splits: Any, options: Any,
            out: Path | None, model: Any, transform: Callable | None, to_input: Callable | None) -> SetPredictions:
    """Add the most-wrong images and a data summary to ``report``; with ``out`` write predictions.csv
    (+ .jsonl), pr_curves.png and most_wrong.png (Grad-CAM of each predicted label)."""
    preds = SetPredictions.from_logits(logits, labels, [images.key(i) for i in range(len(images))], splits.classes,
                                       report["thresholds"])
    worst = preds.most_wrong(options.top_losses)
    report["most_wrong"] = [preds.row(i) for i in worst]
    report["data"] = data_summary(splits)
    if out is None:
        return preds
    files = write_predictions(preds, out, options.jsonl)
    curves = [(c, *pr_curve(preds.probabilities[:, k], preds.labels[:, k]), row["ap"])
              for k, (c, row) in enumerate(zip(preds.classes, report["per_class"])) if row["ap"] is not None]
    plot_pr_curves(curves, out / "pr_curves.png", f"precision-recall on {len(preds.images)} images, "
                                                  f"mAP {report['map']:.3f}")
    plot_gallery(_tiles(preds, worst, images, model, transform, to_input), out / "most_wrong.png",
                 f"the {len(worst)} images whose label sets are most wrong, of {len(preds.images)}",
                 cam_of="the label after 'CAM'")
    report["files"] = [*files, "pr_curves.png", "most_wrong.png"]
    return preds


def _tiles(preds: SetPredictions, indices: list[int], images: Any, model: Any, transform: Callable,
           to_input: Callable) -> list[Tile]:
    """One tile per predicted label (at most :data:`CAMS_PER_IMAGE`; the most likely class when the
    set is empty) of each image, with that label's Grad-CAM."""
    picks = [(i, int(c)) for i in indices
             for c in ([k for k in np.argsort(-preds.probabilities[i]) if preds.predicted[i, k]][:CAMS_PER_IMAGE]
                       or [int(np.argmax(preds.probabilities[i]))])]
    if not picks:
        return []
    views = {i: transform(images.load(i), None) for i in indices}
    batch = torch.from_numpy(np.stack([views[i] for i, _ in picks])).permute(0, 3, 1, 2)
    cams = grad_cam(model, to_input(batch), torch.tensor([c for _, c in picks]))[0]
    tiles = []
    for (i, c), cam in zip(picks, cams):
        r = preds.row(i)
        tiles.append(Tile(views[i], cam, f"{shorten(r['image'])}\ntrue {shorten(r['true'] or '(none)', 28)}\n"
                                         f"pred {shorten(r['predicted'] or '(none)', 28)} · CAM {shorten(preds.classes[c], 14)} "
                                         f"{preds.probabilities[i, c]:.0%}"))
    return tiles


PER_CLASS = """<section id="per-class"><h2>Per class</h2>
<p>Average precision (AP) ranks the images by each class's probability; precision, recall and F1 are at the
class's threshold (tuned on the validation split: {{ evaluation.threshold_rule }}).</p>
<div class="scroll"><table><tr><th>class</th><th>AP</th><th>precision</th><th>recall</th><th>F1</th><th>threshold</th><th>images</th></tr>
{% for row in evaluation.per_class %}<tr><td>{{ row.class }}</td><td class="n">{{ "–" if row.ap is none else "%.3f"|format(row.ap) }}</td>
<td class="n">{{ "%.3f"|format(row.precision) }}</td><td class="n">{{ "%.3f"|format(row.recall) }}</td><td class="n">{{ "%.3f"|format(row.f1) }}</td>
<td class="n">{{ "%.3f"|format(row.threshold) }}</td><td class="n">{{ row.support }}</td></tr>{% endfor %}
</table></div>{% if image %}<img alt="precision-recall curves" src="{{ image }}">{% endif %}</section>
"""

MOST_WRONG = """<section id="most-wrong"><h2>Most wrong label sets</h2>
{% if evaluation.most_wrong %}<p>The images with the most labels missed or added, then the highest loss; each tile shows
the Grad-CAM of one predicted label.</p>
{% if image %}<img alt="most-wrong gallery" src="{{ image }}">{% endif %}
<table id="most-wrong-table"><tr><th>#</th><th>image</th><th>true</th><th>predicted</th><th>wrong labels</th><th>loss</th></tr>
{% for row in evaluation.most_wrong %}<tr><td class="n">{{ loop.index }}</td><td>{{ row.image }}</td><td>{{ row.true }}</td><td>{{ row.predicted }}</td>
<td class="n">{{ row.wrong_labels }}</td><td class="n">{{ "%.4f"|format(row.loss) }}</td></tr>{% endfor %}</table>
{% else %}<p>Every label set on the validation set is right.</p>{% endif %}</section>
"""


def report_sections(evaluation: dict, run_dir: Path) -> list[ReportSection]:
    """Per-class AP with the precision-recall curves, and the most-wrong gallery and table."""
    return [ReportSection("per-class", "per class", PER_CLASS, {"image": data_uri(run_dir / "pr_curves.png")}),
            ReportSection("most-wrong", "most wrong", MOST_WRONG,
                          {"image": data_uri(run_dir / "most_wrong.png", photo=True)})]
