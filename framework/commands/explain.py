"""``tlf explain``: Grad-CAM heat maps of a run's model on image files."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from ..errors import TlfError
from ..rundir import CHECKPOINTS


@click.command()
@click.argument("run_dir", type=click.Path(file_okay=False, exists=True))
@click.argument("paths", nargs=-1, required=True)
@click.option("--class", "target", metavar="NAME", help="Also draw the heat map of this class.")
@click.option("--out", "-o", type=click.Path(file_okay=False), help="Folder for the overlays (default: RUN_DIR/explain).")
@click.option("--checkpoint", type=click.Choice(CHECKPOINTS), default="best", show_default=True)
@click.option("--device", type=click.Choice(["auto", "cuda", "cpu"]), default="auto", show_default=True)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per image (errors included) instead of lines.")
def explain(run_dir: str, paths: tuple[str, ...], target: str | None, out: str | None, checkpoint: str, device: str,
            as_json: bool) -> None:
    """Where RUN_DIR's model looks: Grad-CAM on conv5 for the predicted class (and --class).

    \b
    tlf explain runs/flowers-... photo.jpg
    tlf explain runs/flowers-... photos/ 'more/*.jpg' --class tulips

    PATHS are image files, folders (searched recursively) or glob patterns, as for 'tlf
    predict'. Writes OUT/<name>.gradcam.png per image (input | predicted class | --class).
    Unreadable files are reported one by one; the exit status is then 1.
    """
    from ..insight.explain import Explainer
    from .predict import expand

    explainer = Explainer(run_dir, checkpoint, device, target)
    folder = Path(out) if out else Path(run_dir) / "explain"
    failures = 0
    for path, problem in expand(paths):
        if problem is None:
            try:
                row = explainer.explain(path, folder)
            except TlfError as exc:  # UnreadableImage says why in .reason
                problem = getattr(exc, "reason", exc.message)
        if problem is not None:
            failures += 1
            row = {"path": path, "error": problem}
        if as_json:
            click.echo(json.dumps(row))
        elif "error" in row:
            click.echo(f"error: {path}: {row['error']}", err=True)
        else:
            extra = f", {target} {row['class_probability']:.1%}" if target else ""
            click.echo(f"{path}: {row['predicted']} {row['probability']:.1%}{extra} -> {row['output']}")
    if failures:
        sys.exit(1)
