"""``tlf inspect``: a backbone's stages with output shapes (maps or tokens), parameters and frozen state."""
from __future__ import annotations

import json

import click

from ..config import POOLINGS


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
    from ..inspection import inspect_model
    info = inspect_model(backbone, policy, image_size, num_classes, head, pretrained, train_bn, weights, pooling)
    if as_json:
        click.echo(json.dumps(info, indent=2))
        return
    from rich.table import Table
    from rich.text import Text

    from ..messages import plain_console

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
                      f"{row['trainable']:,}", Text(state, style=styles.get(state, "yellow")))
    totals = info["totals"]
    table.add_section()
    table.add_row("total", "", "", f"{totals['params']:,}", f"{totals['trainable']:,}", "")
    console = plain_console()
    console.print(table)
    console.print(f"frozen: {totals['frozen']:,} parameters; weights: {info['weights'] or 'random init'}; mean {tuple(info['meta']['mean'])}, "
                  f"std {tuple(info['meta']['std'])}, {info['meta']['interpolation']}, "
                  f"crop_pct {info['meta']['crop_pct']}")
    if info["tokens"]:
        t = info["tokens"]
        first = "class token first" if t["class_token"] else "no class token"
        console.print(f"tokens: {t['prefix']} prefix token(s) ({first}), then a {t['grid'][0]}x{t['grid'][1]} grid of {t['patch']} px "
                      f"patches; head pooling: {t['pooling']} (recipe: {t['recipe_pooling']})")
