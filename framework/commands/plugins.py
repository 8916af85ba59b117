"""``tlf plugins``: what is installed, and from which package."""
from __future__ import annotations

import json

import click

from ..registry import SINGULAR, get_registry
from ..specs import KINDS


def plugin_rows(kind: str | None = None) -> list[dict]:
    """One dict per registered spec: kind, name, usage, aliases, description, package, version."""
    registry = get_registry()
    versions = {info.distribution: info.version for info in registry.pm.infos.values()}
    return [
        {
            "kind": SINGULAR[spec.kind],
            "name": spec.name,
            "usage": spec.usage,
            "aliases": list(spec.aliases),
            "description": spec.description,
            "package": spec.plugin,
            "version": versions.get(spec.plugin, ""),
        }
        for spec in registry.specs(kind)
    ]


@click.command()
@click.option("--kind", type=click.Choice(KINDS), help="Only plugins of this kind.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object with plugins and load failures.")
def plugins(kind: str | None, as_json: bool) -> None:
    """List datasets, backbones, freeze policies and augmentations, with their packages."""
    rows = plugin_rows(kind)
    failed = [info for info in get_registry().pm.infos.values() if info.error]
    if as_json:
        click.echo(json.dumps({"plugins": rows, "failed": [
            {"name": f.name, "package": f.distribution, "version": f.version, "error": f.error} for f in failed]},
            indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title="tlf plugins", show_lines=False)
    for column in ("kind", "name", "aliases", "description", "package"):
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(row["kind"], row["usage"], ", ".join(row["aliases"]), row["description"],
                      f"{row['package']} {row['version']}".strip())
    console = Console()
    console.print(table)
    for info in failed:
        console.print(f"[red]failed to load[/red] {info.name} ({info.distribution} {info.version}): {info.error}")
