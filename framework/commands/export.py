"""``tlf export``: a run's model as an ONNX file for onnxruntime, checked against PyTorch."""
from __future__ import annotations

import json

import click

from ..rundir import CHECKPOINTS

EXPORTERS = ("auto", "dynamo", "torchscript")  # as tlf.export.EXPORTERS, which imports torch (not for --help)


def _mb(n: int) -> str:
    return f"{n / 1e6:.1f} MB"


def _refresh_report(run_dir: str, written: object) -> bool:
    """Rewrite RUN_DIR/report.html, when there is one, after a model was written into RUN_DIR
    (the report lists the exports); True when it was."""
    from pathlib import Path
    if Path(str(written)).resolve().parent != Path(run_dir).resolve() or not (Path(run_dir) / "report.html").is_file():
        return False
    from ..insight.report import write_run_report
    write_run_report(run_dir)
    return True


@click.command()
@click.argument("run_dir", type=click.Path(file_okay=False, exists=True))
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="ONNX file to write [default: RUN_DIR/model.onnx].")
@click.option("--opset", type=click.IntRange(min=7), help="ONNX opset [default: the exporter's].")
@click.option("--exporter", type=click.Choice(EXPORTERS), default="auto", show_default=True,
              help="auto: torch.onnx dynamo exporter, TorchScript when dynamo fails or disagrees with PyTorch.")
@click.option("--fp16", is_flag=True, help="Weights and activations in float16 (inputs/outputs stay float32).")
@click.option("--quantize", type=click.Choice(["int8"]),
              help="Also write a static int8 (QDQ) copy, <output>.int8.onnx, calibrated on training images.")
@click.option("--include-preprocessing", is_flag=True,
              help="Take raw uint8 RGB N x 3 x S x S input: cast, /255 and normalization happen in the graph.")
@click.option("--checkpoint", type=click.Choice(CHECKPOINTS), default="best", show_default=True)
@click.option("--data-dir", type=click.Path(file_okay=False), help="Where the run's dataset is, if it moved.")
@click.option("--parity-images", type=click.IntRange(min=1), default=64, show_default=True,
              help="Validation images the ONNX model is compared with PyTorch on.")
@click.option("--calibration-images", type=click.IntRange(min=1), default=128, show_default=True,
              help="Training images int8 calibration sees.")
@click.option("--tta", type=click.Choice(["none", "flip"]), default="none", show_default=True,
              help="flip: the graph averages the probabilities of each image and its mirror image "
                   "(2x the compute; metadata tlf.tta says so).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as one JSON object.")
def export(run_dir: str, output: str | None, opset: int | None, exporter: str, fp16: bool, quantize: str | None,
           include_preprocessing: bool, checkpoint: str, data_dir: str | None, parity_images: int,
           calibration_images: int, tta: str, as_json: bool) -> None:
    """Export RUN_DIR's model to ONNX with a dynamic batch axis and tlf metadata.

    The file passes onnx.checker and must match PyTorch on the run's validation images
    (max |logit difference| within 1e-4 x the logit scale for fp32, 2e-2 for fp16, and
    the same top-1 class); otherwise nothing is written and the figures are shown.
    Run the result with 'tlf predict' or tlf.runtime (no torch needed).
    """
    from .. import messages
    from ..export.run import ExportSettings, export_run

    settings = ExportSettings(opset=opset, exporter=exporter, fp16=fp16, quantize=quantize,
                              include_preprocessing=include_preprocessing, checkpoint=checkpoint, data_dir=data_dir,
                              parity_images=parity_images, calibration_images=calibration_images, tta=tta)
    with messages.phase("export: converting the model to ONNX and checking it against PyTorch"):
        report = export_run(run_dir, output, settings)
    refreshed = _refresh_report(run_dir, report.path)
    if as_json:
        click.echo(json.dumps(report.to_dict()))
        return
    input_kind = "uint8 RGB" if report.preprocessing_in_graph else "float32 normalized"
    click.echo(f"exported {report.path} ({_mb(report.size_bytes)}, {report.precision}, opset {report.opset}, "
               f"{report.exporter} exporter, {input_kind} N x 3 x {report.metadata['crop']} x {report.metadata['crop']} input)")
    for attempt in report.attempts:
        if not attempt.ok:
            click.echo(f"  {attempt.exporter} exporter rejected: {attempt.reason}")
    click.echo(f"parity: {report.parity.describe()}, batch sizes {', '.join(map(str, report.parity.batch_sizes))}")
    for note in report.notes:
        click.echo(f"note: {note}")
    q = report.quantization
    if q is not None:
        click.echo(f"int8: {q.path} ({_mb(q.size_bytes)}, {q.size_ratio:.0%} of fp32), accuracy "
                   f"{q.fp32_accuracy:.4f} -> {q.int8_accuracy:.4f} ({100 * q.accuracy_change:+.2f} points), "
                   f"same top-1 as fp32 on {q.top1_agreement:.1%} of {q.eval_images} validation images "
                   f"({q.calibration_images} calibration images)")
    from ..insight.headline import headline_lines
    for line in headline_lines(run_dir):
        click.echo(line + (" (refreshed: it lists the new model)" if refreshed and line.startswith("report: ") else ""))
