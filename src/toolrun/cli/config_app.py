"""``toolrun config``: read and change config.toml (config_commands.py does the work)."""

from __future__ import annotations

from typing import Annotated

import typer

from . import config_commands
from .invoke import call
from .options import CONTEXT_SETTINGS

config_app = typer.Typer(
    help="Read and change config.toml (comments are kept).",
    context_settings=CONTEXT_SETTINGS,
    no_args_is_help=True,
)


@config_app.command("path")
def config_path() -> None:
    """Print where config.toml is."""
    call(config_commands.path)


@config_app.command("get")
def config_get(
    key: Annotated[str | None, typer.Argument(help="A key; all keys when left out.")] = None,
) -> None:
    """Print a setting (or all of them, with defaults)."""
    call(config_commands.get, key)


@config_app.command("set")
def config_set(
    key: Annotated[str, typer.Argument(help="A key, as `toolrun config get` lists.")],
    value: Annotated[str, typer.Argument(help="The new value.")],
) -> None:
    """Change a setting, keeping the file's comments."""
    call(config_commands.set_, key, value)


@config_app.command("unset")
def config_unset(key: Annotated[str, typer.Argument(help="A key.")]) -> None:
    """Return a setting to its default."""
    call(config_commands.unset, key)
