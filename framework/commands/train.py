"""``tlf train``: one training run, from flags and/or a config file."""
from __future__ import annotations

import json
from pathlib import Path

import click

from ..config import DEVICES, OPTIMIZERS, PRECISIONS


def _help_defaults() -> str:
    from ..config import RunConfig
    d = RunConfig()
    return (f"Defaults: --dataset {d.dataset} --backbone {d.backbone} --policy {d.policy}; --augment, --epochs and "
            f"--lr come from the policy (transfer: none, 10 epochs, lr 1e-3; others: basic).")


@click.command(epilog=_help_defaults())
@click.option("--dataset", "-d", help="Dataset plugin, e.g. flowers, cats_and_dogs, cifar10, folder:PATH, synthetic.")
@click.option("--backbone", "-b", help="Backbone plugin, e.g. efficientnet_lite0, resnet50, vgg16, timm:NAME.")
@click.option("--policy", "-p", help="Freeze policy: scratch, transfer, partial:STAGE (e.g. partial:conv5), init, ...")
@click.option("--augment", "-a", help="Augmentations joined by '+', e.g. basic, strong, basic+mixup, none "
                                     "(default: the policy's).")
@click.option("--epochs", type=int, help="Epochs (default: the policy's).")
@click.option("--batch-size", type=int, help="Images per batch (per process with torchrun).")
@click.option("--image-size", type=int, help="Training crop size (default: the backbone's).")
@click.option("--optimizer", type=click.Choice(OPTIMIZERS), help="Optimizer.")
@click.option("--lr", type=float, help="Peak learning rate (default: the policy's).")
@click.option("--weight-decay", type=float, help="Weight decay (not applied to norms and biases).")
@click.option("--warmup-epochs", type=float, help="Linear warm-up length before the cosine decay.")
@click.option("--label-smoothing", type=float, help="Label smoothing of the training loss.")
@click.option("--grad-clip", type=float, help="Clip the gradient norm to this value.")
@click.option("--seed", type=int, help="Seed of splits, augmentations and initialisation.")
@click.option("--device", type=click.Choice(DEVICES), help="Where to train (auto: CUDA when available).")
@click.option("--precision", type=click.Choice(PRECISIONS), help="auto: bf16 on GPUs that have it, fp32 on CPU.")
@click.option("--compile/--no-compile", default=None, help="torch.compile the model.")
@click.option("--workers", type=int, help="DataLoader worker processes (default: from the CPU count).")
@click.option("--cache", type=click.Choice(["auto", "ram", "disk", "off"]), help="Decode-once image cache.")
@click.option("--feature-cache", help="Frozen-prefix feature cache: auto, off, or a number of augmented views.")
@click.option("--head", type=click.Choice(["linear", "mlp"]), help="New head: linear (GAP+dropout+linear) or mlp.")
@click.option("--dropout", type=float, help="Dropout before the head's last layer.")
@click.option("--train-bn/--no-train-bn", default=None, help="Train BatchNorm affine parameters of frozen stages.")
@click.option("--weights", type=click.Path(dir_okay=False), help="Local pretrained weights (state dict or checkpoint).")
@click.option("--data-dir", type=click.Path(file_okay=False), help="Use an existing copy of the dataset here.")
@click.option("--download/--no-download", default=None, help="Allow downloading the dataset (default: yes).")
@click.option("--val-split", type=float, help="Validation fraction when the data has no split.")
@click.option("--strict/--no-strict", default=None, help="Fail on unreadable images instead of skipping them.")
@click.option("--patience", type=int, help="Stop when val accuracy has not improved for this many epochs.")
@click.option("--out", type=click.Path(file_okay=False), help="Folder for run directories (default: runs).")
@click.option("--name", help="Run directory name (default: dataset-backbone-policy-timestamp).")
@click.option("--config", "config_file", type=click.Path(dir_okay=False), help="YAML/JSON settings; flags override it.")
@click.option("--resume", type=click.Path(file_okay=False, exists=True), help="Continue this run directory.")
@click.option("--quiet", "-q", is_flag=True, help="No progress output; only the final line.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as one JSON object.")
def train(config_file: str | None, resume: str | None, quiet: bool, as_json: bool, **flags) -> None:
    """Train a classifier: dataset + backbone + freeze policy + augmentations.

    \b
    tlf train                                    # offline default: synthetic data
    tlf train --dataset flowers --policy partial:conv5
    tlf train --dataset cats_and_dogs --backbone vgg16 --policy transfer
    tlf train --resume runs/flowers-efficientnet_lite0-transfer-...

    The last line printed names the run directory.
    """
    from ..engine.api import train as run_training
    run = run_training(config_file, resume=Path(resume) if resume else None, quiet=quiet or as_json, **flags)
    summary = run.summary
    if summary is None:  # a non-zero rank under torchrun
        return
    if as_json:
        click.echo(json.dumps(summary))
        return
    best = summary["best_val_accuracy"]
    click.echo(f"best val accuracy {best:.4f} (epoch {summary['best_epoch']}), "
               f"{summary['epochs']} epochs in {summary['seconds']:.0f}s, {summary['images_per_second']:.0f} img/s")
    click.echo(f"run directory: {summary['run_dir']}")
