"""``tlf inspect``: a backbone's stages with output shapes (maps or tokens), parameters and frozen state."""
from __future__ import annotations

import json
from typing import Any

import click

from ..config import POOLINGS



def _count(params: Any) -> tuple[int, int]:
    total = trainable = 0
    for p in params:
        total += p.numel()
        trainable += p.numel() if p.requires_grad else 0
    return total, trainable


def _state(total: int, trainable: int, frozen: bool) -> str:
    if total == 0:
        return "-"
    if not frozen:
        return "trainable" if trainable == total else "partly frozen"
    return "frozen" if trainable == 0 else "norm only"  # train_bn: frozen but for norm affine params


def inspect_model(backbone: str, policy: str | None = None, image_size: int | None = None, num_classes: int = 10,
                  head: str = "linear", pretrained: bool = False, train_bn: bool = False,
                  weights: str | None = None, pooling: str | None = None) -> dict:
    """The data behind ``tlf inspect``: one row per stage plus the head and totals."""
    import torch

    from ..models import build_model
    from ..policies import build_policy
    from ..setting_checks import RANGES, Range, check_value

    image_size = check_value("image_size", image_size, int | None, RANGES["image_size"])
    num_classes = check_value("num_classes", num_classes, int, Range(1))
    freeze_policy = build_policy(policy, train_bn) if policy else None
    model = build_model(backbone, num_classes, pretrained=pretrained, weights=weights, head=head,
                        image_size=image_size, pooling=pooling)
    if freeze_policy is not None:
        freeze_policy.apply(model)
    meta = model.backbone.meta
    size = image_size or meta.image_size
    model.eval()
    by_stage: dict[str, list[str]] = {}
    for alias, stage in model.backbone.aliases.items():
        by_stage.setdefault(stage, []).append(alias)
    rows = []
    x = torch.zeros(1, 3, size, size)
    with torch.no_grad():
        for name, stage in model.backbone.stages.named_children():
            x = stage(x)
            total, trainable = _count(stage.parameters())
            rows.append({"name": name, "aliases": by_stage.get(name, []), "output_shape": list(x.shape[1:]),
                         "params": total, "trainable": trainable,
                         "state": _state(total, trainable, name in model.frozen_stages)})
        logits = model.head(x)
    total, trainable = _count(model.head.parameters())
    head_row = {"name": "head", "kind": head, "output_shape": list(logits.shape[1:]), "params": total,
                "trainable": trainable, "state": _state(total, trainable, False)}
    total, trainable = _count(model.parameters())
    return {
        "backbone": meta.name, "policy": freeze_policy.name if freeze_policy else None,
        "policy_defaults": freeze_policy.defaults if freeze_policy else None,
        "image_size": size, "num_classes": num_classes, "weights": meta.weights,
        "contract": model.backbone.contract, "tokens": _tokens(model, size),
        "meta": {"mean": list(meta.mean), "std": list(meta.std), "interpolation": meta.interpolation,
                 "crop_pct": meta.crop_pct, "feature_dim": meta.feature_dim, "default_image_size": meta.image_size},
        "stages": rows, "head": head_row,
        "totals": {"params": total, "trainable": trainable, "frozen": total - trainable},
    }


def _tokens(model: Any, size: int) -> dict | None:
    """A columnar backbone's token layout at ``size`` px and its head's pooling; None for CNNs."""
    tokens = model.backbone.tokens
    if tokens is None:
        return None
    grid = size // tokens.patch
    return {"prefix": tokens.prefix, "class_token": tokens.class_token, "patch": tokens.patch,
            "grid": [grid, grid], "pooling": model.head.pool.mode, "recipe_pooling": tokens.pooling}


@click.command()
@click.option("--backbone", "-b", required=True, help="Backbone name, e.g. resnet50 or timm:resnet18.")
@click.option("--policy", "-p", default=None, help="Freeze policy to apply, e.g. transfer or partial:conv5.")
@click.option("--image-size", "image_size", type=int, default=None,
              help="Square input size, 32 or more (default: the backbone's).")
@click.option("--num-classes", type=int, default=10, show_default=True, help="Classes of the new head.")
@click.option("--head", type=click.Choice(["linear", "mlp"]), default="linear", show_default=True, help="Head kind.")
@click.option("--pooling", type=click.Choice(POOLINGS), default=None,
              help="Columnar backbones (ViTs): pool the class token, the patch mean, or both (default: the recipe's).")
@click.option("--train-bn", is_flag=True, help="Frozen stages keep trainable norm affine parameters.")
@click.option("--pretrained/--no-pretrained", default=False, show_default=True,
              help="Load the pretrained weights (the layout is the same without them).")
@click.option("--weights", type=click.Path(dir_okay=False), default=None,
              help="Load this weights file (state dict or checkpoint) to check that it fits.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def inspect(backbone: str, policy: str | None, image_size: int | None, num_classes: int, head: str,
            train_bn: bool, pretrained: bool, weights: str | None, pooling: str | None, as_json: bool) -> None:
    """Show a backbone's stages (conv1..conv5, or embed, block1..blockN): output shape, parameters,
    what a policy freezes."""
    info = inspect_model(backbone, policy, image_size, num_classes, head, pretrained, train_bn, weights, pooling)
    if as_json:
        click.echo(json.dumps(info, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    title = f"{info['backbone']} at {info['image_size']}x{info['image_size']}"
    if info["policy"]:
        defaults = info["policy_defaults"]
        title += f", policy {info['policy']} (lr {defaults['lr']:g}, {defaults['epochs']} epochs)"
    table = Table(title=title)
    table.add_column("stage", no_wrap=True)
    table.add_column("aliases", overflow="fold", min_width=12)
    for column in ("output", "params", "trainable"):
        table.add_column(column, justify="right", no_wrap=True)
    table.add_column("state", no_wrap=True)
    styles = {"frozen": "blue", "trainable": "green"}
    for row in [*info["stages"], info["head"]]:
        aliases = row.get("aliases", [])
        alias_text = ", ".join(aliases[:3]) + (", ..." if len(aliases) > 3 else "") if aliases else row.get("kind", "")
        state = row["state"]
        table.add_row(row["name"], alias_text, str(tuple(row["output_shape"])), f"{row['params']:,}",
                      f"{row['trainable']:,}", f"[{styles.get(state, 'yellow')}]{state}[/]")
    totals = info["totals"]
    table.add_section()
    table.add_row("total", "", "", f"{totals['params']:,}", f"{totals['trainable']:,}", "")
    console = Console()
    console.print(table)
    console.print(f"frozen: {totals['frozen']:,} parameters; weights: {info['weights'] or 'random init'}; mean {tuple(info['meta']['mean'])}, "
                  f"std {tuple(info['meta']['std'])}, {info['meta']['interpolation']}, "
                  f"crop_pct {info['meta']['crop_pct']}")
    if info["tokens"]:
        t = info["tokens"]
        first = "class token first" if t["class_token"] else "no class token"
        console.print(f"tokens: {t['prefix']} prefix token(s) ({first}), then a {t['grid'][0]}x{t['grid'][1]} grid of {t['patch']} px "
                      f"patches; head pooling: {t['pooling']} (recipe: {t['recipe_pooling']})")
