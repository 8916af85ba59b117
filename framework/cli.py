"""The ``tlf`` command line: a click group whose commands load on first use."""
from __future__ import annotations

import os
import sys
from importlib import import_module
from typing import Any

import click

from ._version import __version__
from .address_space import address_space_failure, check_address_space
from .errors import TlfError
from .heap import keep_freed_memory
from .pluginmanager import LOAD_ENV

# command name -> "module:attribute"; imported only when the command runs or --help lists it
COMMANDS = {
    "plugins": "tlf.commands.plugins:plugins",
    "train": "tlf.commands.train:train",
    "evaluate": "tlf.commands.evaluate:evaluate",
    "lr-find": "tlf.commands.lr_find:lr_find",
    "inspect": "tlf.commands.inspect:inspect",
    "data": "tlf.commands.data:data",
    "export": "tlf.commands.export:export",
    "predict": "tlf.commands.predict:predict",
    "compare": "tlf.commands.compare:compare",
    "report": "tlf.commands.compare:report",
    "explain": "tlf.commands.explain:explain",
    "tune": "tlf.commands.tune:tune",
    "audit": "tlf.commands.audit:audit",
    "bench": "tlf.commands.bench:bench",
    "serve": "tlf.commands.serve:serve",
}
TORCH_FREE = ("predict", "serve")  # onnxruntime and OpenCV only: under 1 GiB of address space


class TlfGroup(click.Group):
    """Lazy subcommands (as in click's docs) and one-line errors for :class:`TlfError`."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *COMMANDS})

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in COMMANDS:
            module, attr = COMMANDS[name].split(":")
            return getattr(import_module(module), attr)
        return super().get_command(ctx, name)

    def resolve_command(self, ctx: click.Context, args: list[str]) -> Any:
        try:
            return super().resolve_command(ctx, args)
        except click.exceptions.NoSuchCommand as exc:  # click only suggests among eagerly added commands
            raise click.exceptions.NoSuchCommand(exc.command_name, possibilities=self.list_commands(ctx),
                                                 ctx=ctx) from None

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except TlfError as exc:
            raise click.ClickException(str(exc)) from None


def add_plugin_commands(group: click.Group) -> None:
    """Let plugins add commands; a name taken twice is an error naming both packages. The
    registry is built first, so a plugin whose registration hooks fail (and is unregistered)
    adds no command."""
    from .pluginmanager import get_plugin_manager
    from .registry import get_registry

    pm = get_plugin_manager()
    try:
        get_registry()
    except TlfError:
        pass  # a spec name clash: reported by the command that looks specs up, not by every command
    owners = dict.fromkeys([*COMMANDS, *group.commands], "tlf")
    for impl in pm.impls("tlf_register_commands"):
        package = pm.package_of(impl.plugin_name)
        staging = click.Group()
        if not pm.call_impl(impl, cli=staging):
            continue
        for name, command in staging.commands.items():
            if name in owners:
                raise TlfError(f"command {name!r} is provided twice: by package {owners[name]} "
                               f"and by package {package}", hint=f"uninstall one of them, or list the packages to load in {LOAD_ENV}")
            owners[name] = package
            group.add_command(command, name)


@click.group(cls=TlfGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="tlf")
def cli() -> None:
    """tlf: train classifiers from pretrained vision backbones.

    Pick a dataset, a backbone, a freeze policy and augmentations; get a trained
    model, its numbers and an ONNX file. `tlf plugins` lists what is installed.
    This help lists tlf's own commands and loads no plugin; a command added by a
    plugin runs as `tlf NAME` (`tlf NAME --help`).
    """


def needs_plugins(args: list[str]) -> bool:
    """Whether ``tlf ARGS`` may need third-party plugins: not ``--help`` or ``--version`` of tlf
    itself or of a core command, so that a plugin that hangs or crashes at import cannot stop
    them (docs/plugins.md, "What tlf trusts")."""
    asks = any(arg in ("--help", "-h", "--version") for arg in args)
    words = [arg for arg in args if not arg.startswith("-")]
    return not (asks and (not words or words[0] in COMMANDS))


def needs_torch(args: list[str]) -> bool:
    """Whether ``tlf ARGS`` may import torch: every command but those that run ONNX models with
    onnxruntime alone (:data:`TORCH_FREE`), which keep working under a small ``ulimit -v``."""
    words = [arg for arg in args if not arg.startswith("-")]
    return not words or words[0] not in TORCH_FREE


def main() -> None:
    """Console-script entry point."""
    os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")  # offline: no version check at import
    keep_freed_memory()
    try:
        if needs_plugins(sys.argv[1:]):
            if needs_torch(sys.argv[1:]):
                check_address_space()
            add_plugin_commands(cli)
        cli.main(prog_name="tlf")
    except TlfError as exc:
        click.echo(f"Error: {exc}", err=True)
        sys.exit(1)
    except (ImportError, MemoryError, RuntimeError, OSError) as exc:
        error = address_space_failure(exc)
        if error is None:
            raise
        click.echo(f"Error: {error}", err=True)
        sys.exit(1)
