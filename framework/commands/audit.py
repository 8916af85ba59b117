"""``tlf audit``: find label errors, duplicates, leaks and outliers in a dataset."""
from __future__ import annotations

import json

import click

from ..audit.defaults import COSINE, FOLDS, PHASH
from .options import settings

AUDIT_SETTINGS = ("dataset", "backbone", "image_size", "batch_size", "seed", "device", "precision", "channels_last",
                  "workers", "cache", "frozen_engine", "pretrained", "weights", "data_dir", "download", "val_split",
                  "strict", "exclude", "relabel")


@click.command()
@click.argument("dataset_name", metavar="[DATASET]", required=False)
@settings(*AUDIT_SETTINGS)
@click.option("--out", type=click.Path(file_okay=False), default="runs", show_default=True,
              help="Folder for the audit folder.")
@click.option("--name", help="Audit folder name (default: dataset-backbone-audit-timestamp).")
@click.option("--cosine", type=float, default=COSINE, show_default=True,
              help="Near copies: least cosine similarity of two images' embeddings to compare their pixels.")
@click.option("--phash", type=int, default=PHASH, show_default=True,
              help="Near copies: most perceptual-hash bits (of 64) apart to be a copy without a keypoint check.")
@click.option("--folds", type=int, default=FOLDS, show_default=True, help="Cross-validation folds of the label check.")
@click.option("--quiet", "-q", is_flag=True, help="No progress output; only the final lines.")
@click.option("--json", "as_json", is_flag=True, help="Print audit.json's summary as one JSON object on stdout.")
def audit(dataset_name: str | None, out: str, name: str | None, cosine: float, phash: int, folds: int, quiet: bool, as_json: bool, **flags) -> None:
    """Audit a dataset: label errors, duplicates, train/validation leaks, outliers, odd images.

    \b
    tlf audit flowers
    tlf audit folder:path/to/images --backbone resnet50
    tlf train --dataset flowers --exclude leaks.csv --relabel fixes.csv

    One frozen pass of the backbone embeds every image (shared with 'tlf train --policy
    transfer' through the feature store); the folder written holds audit.json, issues.csv,
    label_scores.csv and audit.html. tlf never moves or deletes your files: act on the findings
    with --exclude and --relabel.
    """
    from ..audit.run import audit as run_audit
    from ..errors import TlfError
    if dataset_name and flags.get("dataset") and flags["dataset"] != dataset_name:
        raise TlfError(f"two datasets given: {dataset_name} and --dataset {flags['dataset']}", hint="give one")
    flags["dataset"] = dataset_name or flags.get("dataset")
    result = run_audit(out=out, name=name, quiet=quiet, cosine=cosine, phash=phash, folds=folds,
                       **{k: v for k, v in flags.items() if v is not None})
    if as_json:
        click.echo(json.dumps(result.summary))
        return
    counts = ", ".join(f"{n} {kind}" for kind, n in result.summary["counts"].items() if n) or "no findings"
    click.echo(f"{result.summary['images']} images: {counts} ({result.summary['seconds']:.0f}s)")
    click.echo(f"report: {result.directory / 'audit.html'}")
    click.echo(f"audit directory: {result.directory}")
