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
    the kind's own fields (``details``; a callable field, such as a backbone's ``facts``: whether it is set)."""
    return {
        "kind": SINGULAR[spec.kind],
        "name": spec.name,
        "usage": spec.usage,
        "aliases": list(spec.aliases),
        "description": spec.description,
        "package": spec.plugin,
        "version": versions.get(spec.plugin, ""),
        "details": {f.name: getattr(spec, f.name) is not None if f.name in spec.optional_callees
                    else getattr(spec, f.name) for f in fields(spec) if f.name not in COMMON},
    }


def plugin_rows(kind: str | None = None, name: str | None = None) -> list[dict]:
    """One row per registered spec (see :func:`spec_row`); ``name``: only that plugin."""
    registry = get_registry()
    specs = registry.find(name, kind) if name else registry.specs(kind)
    versions = {info.distribution: info.version for info in registry.pm.infos.values()}
    return [spec_row(spec, versions) for spec in specs]


def _print_by_kind(console, rows: list[dict]) -> None:
    """One block per kind, one plugin per line: usage, then its description wrapped to the
    terminal's width with its aliases; a package other than tlf named in brackets."""
    from rich.table import Table
    from rich.text import Text

    own = next((f"{r['package']} {r['version']}".strip() for r in rows if r["package"] == "tlf"), "tlf")
    for kind in KINDS:
        of_kind = [row for row in rows if row["kind"] == SINGULAR[kind]]
        if not of_kind:
            continue
        table = Table.grid(padding=(0, 2))
        table.add_column(no_wrap=True)
        table.add_column(ratio=1, overflow="fold")
        for row in of_kind:
            aliases = f"; also {', '.join(row['aliases'])}" if row["aliases"] else ""
            package = "" if row["package"] == "tlf" else f" [{row['package']} {row['version']}]".rstrip()
            table.add_row(Text(f"  {row['usage']}"), Text(row["description"] + aliases + package))
        console.print(kind, style="bold", highlight=False)
        console.print(table, highlight=False)
    console.print(f"Plugins without a [package] come with {own}. 'tlf plugins NAME' shows one in full; "
                  f"--json lists them for scripts.", highlight=False, markup=False)


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
    _print_by_kind(console, rows)
    for info in pm.failures():
        console.print(Text.assemble(("plugin error: ", "red"),
                                    f"{info.name} ({info.distribution} {info.version}) {info.error}"))
