"""``tlf evaluate``: a run's model on a validation set, in detail."""
from __future__ import annotations

import json
from pathlib import Path

import click

from ..config import PRECISIONS
from ..rundir import CHECKPOINTS

TTA_MODES = ("none", "flip", "flip+crops")  # as tlf.models.tta.TTA_MODES, which imports torch (not for --help)
ENGINES = ("auto", "torch", "onnxruntime")  # as tlf.engine.eval_engine.ENGINES (torch again)
SPLITS = ("val", "test")  # as tlf.insight.evaluate_run.SPLITS (torch again)


@click.command()
@click.argument("run_dir", type=click.Path(file_okay=False, exists=True))
@click.option("--dataset", "-d", help="Evaluate on another dataset with the same classes.")
@click.option("--data-dir", type=click.Path(file_okay=False), help="Use an existing copy of the dataset here.")
@click.option("--checkpoint", type=click.Choice(CHECKPOINTS), default="best", show_default=True)
@click.option("--split", type=click.Choice(SPLITS), default="val", show_default=True,
              help="The split scored: val (the one that picked the checkpoint), or the data's held-out test split "
                   "(its files go into RUN_DIR/test/).")
@click.option("--top-k", type=int, default=5, show_default=True, help="Also report top-k accuracy.")
@click.option("--batch-size", type=int, default=64, show_default=True)
@click.option("--device", type=click.Choice(["auto", "cuda", "cpu"]), default="auto", show_default=True)
@click.option("--precision", type=click.Choice(PRECISIONS), default="auto", show_default=True,
              help="As in training (auto: bf16 on GPUs, fp32 on CPU); fp32 scores the weights as the exported "
                   "ONNX model computes them.")
@click.option("--tta", type=click.Choice(TTA_MODES), default="none", show_default=True,
              help="Test-time augmentation: average the probabilities of each image and its mirror image (flip), "
                   "or of 5 crops and their mirror images (flip+crops, 10 views).")
@click.option("--engine", type=click.Choice(ENGINES), default="auto", show_default=True,
              help="What runs the images through the model: auto is onnxruntime on the CPU at fp32 (exported once "
                   "per checkpoint and cached, checked against torch on the first batch; torch if it does not "
                   "export or match), torch on GPUs.")
@click.option("--json", "as_json", is_flag=True,
              help="Print the report as one JSON object, and also write predictions.jsonl (one object per image).")
@click.option("--top-losses", type=click.IntRange(min=1), default=16, show_default=True,
              help="Images in the top-loss list and gallery (top_losses.png).")
@click.option("--label-errors", type=click.FloatRange(0, 1), default=None, metavar="CONFIDENCE",
              help="Also write label_errors.csv: mistakes made with at least this confidence, highest loss "
                   "first (e.g. 0.8) — the labels worth checking by hand.")
@click.option("--report/--no-report", "html_report", default=True, show_default=True,
              help="Write RUN_DIR/report.html.")
def evaluate(run_dir: str, dataset: str | None, data_dir: str | None, checkpoint: str, split: str, top_k: int,
             batch_size: int, device: str, precision: str, tta: str, engine: str, as_json: bool, top_losses: int,
             label_errors: float | None, html_report: bool) -> None:
    """Accuracy, balanced accuracy, macro F1, per-class precision/recall/F1, top-k and confusion
    matrix of RUN_DIR's model, and what it got wrong: per-image predictions, most-confused pairs
    and top losses.

    Writes evaluation.json, confusion.png, predictions.csv, top_losses.png and confused.png
    (with Grad-CAM) and report.html into RUN_DIR (with --split test: the same files of the
    test split into RUN_DIR/test/, and report.html as it was). A multi-label run: mAP, micro/macro
    F1, exact-set accuracy and per-class AP at the thresholds tuned on validation; pr_curves.png and
    most_wrong.png instead of the confusion matrix and the galleries.
    """
    from ..insight.evaluate_run import EvaluationSettings, evaluate as run_evaluation
    from ..insight.evaluation import InsightOptions
    settings = EvaluationSettings(dataset=dataset, data_dir=data_dir, checkpoint=checkpoint, split=split, top_k=top_k,
                                  batch_size=batch_size, device=device, precision=precision, tta=tta, engine=engine,
                                  insight=InsightOptions(top_losses=top_losses, label_errors=label_errors,
                                                         jsonl=as_json))
    report = run_evaluation(run_dir, settings)
    if html_report and split == "val":
        from ..insight.report import write_run_report
        write_run_report(run_dir)
    if as_json:
        click.echo(json.dumps(report))
        return
    _print_report(report, checkpoint)
    figures = ["confusion.png"] if "confusion_matrix" in report else []  # a multi-label report draws pr_curves.png
    report_written = ["report.html"] if html_report and split == "val" else []
    written = ["evaluation.json", *figures, *report.get("files", []), *report_written]
    click.echo(f"wrote into {Path(run_dir) / 'test' if split == 'test' else run_dir}: {', '.join(written)}")
    from ..insight.headline import headline_lines
    for line in headline_lines(run_dir):
        click.echo(line)


def _print_report(report: dict, checkpoint: str) -> None:
    """The per-class table, the confusion matrix, the summary line and the mistakes, on the terminal
    (a multi-label report: per-class AP at the thresholds, the summary line, the most-wrong label sets)."""
    from rich.table import Table

    from ..messages import plain_console
    console = plain_console()
    split = "test" if report.get("split") == "test" else "validation"
    table = Table(title=f"{report['dataset']} · {split} split, {report['images']} images · {checkpoint} checkpoint")
    columns = list(report["per_class"][0]) if report["per_class"] else ["class"]
    for column in columns:
        table.add_column(column, justify="left" if column == "class" else "right")
    for row in report["per_class"]:
        table.add_row(*(_cell(row[c]) for c in columns))
    console.print(table)
    if "map" in report:
        from .mistakes import print_wrong_sets
        click.echo(f"mAP {report['map']:.4f}  micro F1 {report['micro_f1']:.4f}  macro F1 {report['macro_f1']:.4f}  "
                   f"exact-set accuracy {report['accuracy']:.4f}")
        print_wrong_sets(console, report)
        return
    classes = [r["class"] for r in report["per_class"]]
    cm = Table(title="confusion matrix (rows: true, columns: predicted)")
    cm.add_column("")
    for c in classes:
        cm.add_column(c, justify="right")
    for c, row in zip(classes, report["confusion_matrix"]):
        cm.add_row(c, *map(str, row))
    console.print(cm)
    topk = next(k for k in report if k.startswith("top"))
    click.echo(f"accuracy {report['accuracy']:.4f}  {topk.replace('_', ' ')} {report[topk]:.4f}  "
               f"balanced accuracy {report['balanced_accuracy']:.4f}  macro F1 {report['macro_f1']:.4f}")
    from .mistakes import print_errors
    print_errors(console, report)


def _cell(value: object) -> str:
    """A per-class table cell: a float to 3 places, a missing value as a dash."""
    return "–" if value is None else f"{value:.3f}" if isinstance(value, float) else str(value)
