"""Run-setting options shared by ``tlf train`` and ``tlf compare``: one declaration each."""
from __future__ import annotations

from typing import Callable

import click

from ..config import DEVICES, FROZEN_ENGINES, OPTIMIZERS, POOLINGS, PRECISIONS, SAMPLERS, SCHEDULES

class LearningRate(click.ParamType):
    """A number, or ``auto``."""

    name = "LR|auto"

    def convert(self, value, param, ctx):
        if value == "auto" or isinstance(value, float):
            return value
        try:
            return float(value)
        except ValueError:
            self.fail(f"{value!r} is neither a number nor auto", param, ctx)


SETTINGS: dict[str, Callable] = {
    "dataset": click.option("--dataset", "-d",
                            help="Dataset plugin, e.g. flowers, cats_and_dogs, cifar10, folder:PATH, synthetic."),
    "backbone": click.option("--backbone", "-b",
                             help="Backbone plugin, e.g. efficientnet_lite0, resnet50, vgg16, timm:NAME."),
    "policy": click.option("--policy", "-p",
                           help="Freeze policy: scratch, transfer, partial:STAGE (e.g. partial:conv5), init, ..."),
    "augment": click.option("--augment", "-a", help="Augmentations joined by '+', e.g. basic, strong, basic+mixup, "
                                                    "none (default: the policy's; label sets: flip)."),
    "epochs": click.option("--epochs", type=int,
                           help="Epochs (default: the policy's, raised on small datasets to reach 300 optimizer "
                                "steps, at most 4x; see docs/strategies.md)."),
    "batch_size": click.option("--batch-size", type=int, help="Images per batch (per process with torchrun)."),
    "image_size": click.option("--image-size", type=int, help="Training crop size (default: the backbone's)."),
    "optimizer": click.option("--optimizer", type=click.Choice(OPTIMIZERS), help="Optimizer."),
    "lr": click.option("--lr", type=LearningRate(),
                       help="Peak learning rate (default: the policy's), or auto: the lr range test's suggestion "
                            "(see tlf lr-find)."),
    "head_lr_scale": click.option("--head-lr-scale", type=float,
                                  help="The new head's lr over the pretrained stages' (default: the policy's; init "
                                       "10, partial 3, others 1; 1 for one lr everywhere)."),
    "weight_decay": click.option("--weight-decay", type=float, help="Weight decay (not applied to norms and biases)."),
    "warmup_epochs": click.option("--warmup-epochs", type=float, help="Linear warm-up length before the cosine decay."),
    "schedule": click.option("--schedule", type=click.Choice(SCHEDULES),
                             help="LR after the warm-up, per parameter group: cosine (default) to zero, onecycle "
                                  "(its own 30% rise from lr/25), step (x0.1 after each third), constant, plateau "
                                  "(x0.1 after 2 epochs without a better val accuracy)."),
    "accumulate": click.option("--accumulate", type=int,
                               help="Micro-batches per optimizer step: effective batch = batch size x K "
                                    "(BatchNorm still sees batch-size images)."),
    "class_weights": click.option("--class-weights",
                                  help="Loss weight per class: none (default), auto (inverse frequency), effective "
                                       "(effective number of samples), or a JSON/YAML file 'class: weight'."),
    "sampler": click.option("--sampler", type=click.Choice(SAMPLERS),
                            help="shuffle (default), or balanced: draw every class equally often (works with torchrun)."),
    "ema": click.option("--ema", type=float,
                        help="Keep an exponential moving average of the weights with this decay (e.g. 0.999); "
                             "best.pt keeps whichever of raw and EMA validates better."),
    "label_smoothing": click.option("--label-smoothing", type=float, help="Label smoothing of the training loss (default 0.1; multi-label 0)."),
    "grad_clip": click.option("--grad-clip", type=float, help="Clip the gradient norm to this value."),
    "seed": click.option("--seed", type=int, help="Seed of splits, augmentations and initialisation."),
    "device": click.option("--device", type=click.Choice(DEVICES),
                           help="Where to train (auto: CUDA, else Apple's mps, else the CPU)."),
    "precision": click.option("--precision", type=click.Choice(PRECISIONS),
                              help="auto: bf16 on GPUs that have it, fp32 on the CPU and mps (on CPUs with AMX, bf16 "
                                   "trains large backbones such as resnet50 or vgg16 much faster)."),
    "channels_last": click.option("--channels-last/--no-channels-last", default=None,
                                  help="NHWC memory format (default: on; faster on GPUs and for most CPU "
                                       "backbones)."),
    "compile": click.option("--compile/--no-compile", default=None, help="torch.compile the model."),
    "workers": click.option("--workers", type=int, help="DataLoader worker processes (default: from the CPU count)."),
    "cache": click.option("--cache", type=click.Choice(["auto", "ram", "disk", "off"]), help="Decode-once image cache."),
    "feature_cache": click.option("--feature-cache",
                                  help="Frozen-prefix feature cache: auto, off, or a number of augmented views."),
    "frozen_engine": click.option("--frozen-engine", type=click.Choice(FROZEN_ENGINES),
                                  help="What runs the cached frozen pass: auto (onnxruntime fp32 on the CPU, "
                                       "where it is faster: 1.2-1.5x on AVX2, 2.5x with AMX; also for bf16 runs; torch on GPUs), torch, onnxruntime, or "
                                       "onnxruntime-int8 (opt-in: the prefix quantized to int8, calibrated on "
                                       "training images; its features are not fp32's). Without a feature cache "
                                       "(init, scratch) it also picks what runs the validation pass on the CPU at "
                                       "fp32 (auto: the faster of one pass of each)."),
    "head": click.option("--head", type=click.Choice(["linear", "mlp"]),
                         help="New head: linear (GAP+dropout+linear) or mlp."),
    "pooling": click.option("--pooling", type=click.Choice(POOLINGS),
                            help="Columnar backbones (ViTs): the head pools the class token (cls), the mean of the "
                                 "patch tokens (mean) or both concatenated (cls+mean); default: the backbone's recipe."),
    "dropout": click.option("--dropout", type=float, help="Dropout before the head's last layer (default 0.2; multi-label 0)."),
    "train_bn": click.option("--train-bn/--no-train-bn", default=None,
                             help="Train BatchNorm affine parameters of frozen stages."),
    "pretrained": click.option("--pretrained/--no-pretrained", default=None,
                               help="Start from the backbone's pretrained weights (default), or random ones."),
    "weights": click.option("--weights", type=click.Path(dir_okay=False),
                            help="Local pretrained weights (state dict or checkpoint)."),
    "data_dir": click.option("--data-dir", type=click.Path(file_okay=False),
                             help="Use an existing copy of the dataset here."),
    "download": click.option("--download/--no-download", default=None,
                             help="Allow downloading the dataset (default: yes)."),
    "val_split": click.option("--val-split", type=float, help="Validation fraction when the data has no split."),
    "test_split": click.option("--test-split/--no-test-split", default=None,
                               help="Score the best checkpoint on the data's held-out test split at the end, when it "
                                    "has one (default: yes; tlf tune's trials never do)."),
    "strict": click.option("--strict/--no-strict", default=None,
                           help="Fail on unreadable images instead of skipping them."),
    "exclude": click.option("--exclude", type=click.Path(dir_okay=False, exists=True, resolve_path=True),
                            help="Leave out the images this file lists (one path a line, or a CSV with a path "
                                 "column such as the audit's issues.csv); the files are not touched."),
    "relabel": click.option("--relabel", type=click.Path(dir_okay=False, exists=True, resolve_path=True),
                            help="Train with the labels this CSV gives ('path,new_label' lines); the files are "
                                 "not touched."),
    "patience": click.option("--patience", type=int,
                             help="Stop when val accuracy has not improved for this many epochs."),
    "loggers": click.option("--log", "--loggers", "loggers",  # torchrun's parser takes --log for its --log-dir
                            help="Also log to these trackers, comma-separated: tensorboard, mlflow[:URI], wandb[:PROJECT] "
                                 "('tlf plugins --kind loggers' lists them; default: the run directory only; "
                                 "under torchrun write --loggers)."),
    "callbacks": click.option("--callback", "callbacks", multiple=True, callback=lambda ctx, param, value: value or None,
                              help="Add a training-loop callback plugin, NAME or NAME:ARG; repeatable "
                                   "('tlf plugins --kind callbacks' lists them)."),
    "task": click.option("--task", help="What the run predicts: a task plugin (default: multi-label when the data gives label sets, else single-label)."),
}


def settings(*names: str) -> Callable:
    """Decorate a command with the named run-setting options, in the given order."""
    def decorate(command: Callable) -> Callable:
        for name in reversed(names):
            command = SETTINGS[name](command)
        return command
    return decorate
