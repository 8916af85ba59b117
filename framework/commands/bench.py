"""``tlf bench``: how fast training can go on this machine, and what holds it back."""
from __future__ import annotations

import json

import click

from ..config import DEVICES


@click.command()
@click.option("--device", type=click.Choice(DEVICES), default="auto", show_default=True,
              help="Device to measure (auto: CUDA, then mps, then the CPU).")
@click.option("--backbone", "backbones", multiple=True, default=("efficientnet_lite0",), show_default=True,
              help="Backbone to measure (repeatable); random weights, nothing is downloaded.")
@click.option("--image-size", type=int, help="Input size in pixels (default: the backbone's).")
@click.option("--batch-size", type=int, default=32, show_default=True, help="Images per batch.")
@click.option("--seconds", type=float, default=60.0, show_default=True,
              help="Time budget of the measurements, shared by the backbones (set-up and one warm-up round "
                   "each not counted; at least one counted round each).")
@click.option("--data", type=click.Path(file_okay=False), help="A class-per-folder image tree to read "
              "(default: generated JPEGs).")
@click.option("--workers", type=int, help="Loader workers (default: as 'tlf train' chooses).")
@click.option("--out", type=click.Path(file_okay=False), help="Folder for bench.md and bench.json.")
@click.option("--json", "as_json", is_flag=True, help="Print the measurements as one JSON object on stdout.")
def bench(device: str, backbones: tuple[str, ...], image_size: int | None, batch_size: int, seconds: float,
          data: str | None, workers: int | None, out: str | None, as_json: bool) -> None:
    """Measure training speed here: the model alone, tlf's data pipeline alone, a naive
    torchvision loop with the same model, and the bottleneck.

    \b
    tlf bench
    tlf bench --backbone efficientnet_lite0 --backbone resnet50 --seconds 120 --out bench
    tlf bench --device cuda --data path/to/flower_photos --json

    Each measurement runs in turns with the others until the budget is spent; the figures
    are images/s (median, slowest and fastest round).
    """
    from pathlib import Path

    from ..bench.report import markdown, write
    from ..bench.run import BenchSettings
    from ..bench.run import bench as run_bench
    result = run_bench(BenchSettings(backbones=backbones, device=device, image_size=image_size,
                                     batch_size=batch_size, seconds=seconds, data=data, workers=workers))
    if out:
        click.echo(f"wrote {write(result, Path(out))}", err=as_json)
    click.echo(json.dumps(result) if as_json else markdown(result))
