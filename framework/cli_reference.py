"""The ``tlf`` command group as the CLI reference (docs/cli.md, built by mkdocs-click) shows it:
every built-in command and every command the installed plugins add.

:data:`tlf` is a plain group holding them all, loaded: mkdocs-click lists a group's loaded
``commands`` when it has any, and would miss the lazy built-ins of :class:`tlf.cli.TlfGroup`
once a plugin had added one.
"""
from __future__ import annotations

import click

from .cli import add_plugin_commands, cli

add_plugin_commands(cli)
_context = click.Context(cli, info_name="tlf")
tlf = click.Group("tlf", help=cli.help, params=cli.params, context_settings=cli.context_settings,
                  commands={name: cli.get_command(_context, name) for name in cli.list_commands(_context)})
