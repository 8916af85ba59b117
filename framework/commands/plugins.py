"""``tlf plugins``: what is installed, and from which package."""
from __future__ import annotations

import json
from dataclasses import fields

import click

from ..registry import SINGULAR, get_registry
from ..specs import KINDS, Spec

COMMON = {f.name for f in fields(Spec)}


def spec_row(spec: Spec, versions: dict[str, str]) -> dict:
    """A spec as plain data: kind, name, usage, aliases, description, package, version and
    the kind's own fields (``details``)."""
    return {
        "kind": SINGULAR[spec.kind],
        "name": spec.name,
        "usage": spec.usage,
        "aliases": list(spec.aliases),
        "description": spec.description,
        "package": spec.plugin,
        "version": versions.get(spec.plugin, ""),
        "details": {f.name: getattr(spec, f.name) for f in fields(spec) if f.name not in COMMON},
    }


def plugin_rows(kind: str | None = None, name: str | None = None) -> list[dict]:
    """One row per registered spec (see :func:`spec_row`); ``name``: only that plugin."""
    registry = get_registry()
    specs = registry.find(name, kind) if name else registry.specs(kind)
    versions = {info.distribution: info.version for info in registry.pm.infos.values()}
    return [spec_row(spec, versions) for spec in specs]


@click.command()
@click.argument("name", required=False)
@click.option("--kind", type=click.Choice(KINDS), help="Only plugins of this kind.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object: plugins, loaded plugin modules, failures.")
def plugins(name: str | None, kind: str | None, as_json: bool) -> None:
    """List datasets, backbones, freeze policies, augmentations, loggers, callbacks and tasks, with their packages.

    With NAME, show that plugin's details (every kind that has a plugin of that name).
    """
    rows = plugin_rows(kind, name)
    pm = get_registry().pm
    if as_json:
        modules = [{"name": info.name, "package": info.distribution, "version": info.version,
                    "hooks": sorted(c.name for c in pm.get_hookcallers(pm.get_plugin(info.name)) or ())}
                   for info in pm.infos.values() if not info.error]
        failed = [{"name": f.name, "package": f.distribution, "version": f.version, "error": f.error}
                  for f in pm.failures()]
        click.echo(json.dumps({"plugins": rows, "modules": modules, "failed": failed}, indent=2, default=str))
        return
    from rich.table import Table
    from rich.text import Text

    from ..messages import plain_console
    console = plain_console()
    if name:
        for row in rows:
            table = Table(title=f"{row['kind']} {row['name']}", show_header=False)
            table.add_column(style="bold")
            table.add_column(overflow="fold")
            table.add_row("usage", row["usage"])
            table.add_row("aliases", ", ".join(row["aliases"]))
            table.add_row("description", row["description"])
            table.add_row("package", f"{row['package']} {row['version']}".strip())
            for key, value in row["details"].items():
                table.add_row(key.replace("_", " "), "" if value is None else str(value))
            console.print(table)
        return
    table = Table(title="tlf plugins")
    table.add_column("kind", no_wrap=True)
    table.add_column("name", no_wrap=True)
    table.add_column("aliases", overflow="fold")
    table.add_column("description", ratio=1, overflow="fold")
    table.add_column("package", overflow="fold")
    for row in rows:
        table.add_row(row["kind"], row["usage"], ", ".join(row["aliases"]), row["description"],
                      f"{row['package']} {row['version']}".strip())
    console.print(table)
    for info in pm.failures():
        console.print(Text.assemble(("plugin error: ", "red"),
                                    f"{info.name} ({info.distribution} {info.version}) {info.error}"))
