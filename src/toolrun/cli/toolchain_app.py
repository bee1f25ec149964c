"""``toolrun toolchain``: list, show and validate toolchains (toolchain_commands.py does the
work)."""

from __future__ import annotations

from typing import Annotated

import typer

from . import toolchain_commands
from .invoke import call
from .options import CONTEXT_SETTINGS, Json

toolchain_app = typer.Typer(
    help="List, show and validate toolchains.",
    context_settings=CONTEXT_SETTINGS,
    no_args_is_help=True,
)


@toolchain_app.command("list")
def toolchain_list(as_json: Json = False) -> None:
    """Toolchains found in ./toolchains, TOOLRUN_TOOLCHAINS and the config dir."""
    call(toolchain_commands.list_toolchains, as_json=as_json)


@toolchain_app.command("show")
def toolchain_show(
    name: Annotated[str, typer.Argument(help="A toolchain name.")], as_json: Json = False
) -> None:
    """A toolchain's params and steps."""
    call(toolchain_commands.show, name, as_json=as_json)


@toolchain_app.command("validate")
def toolchain_validate(
    names: Annotated[list[str] | None, typer.Argument(help="Toolchains (default: all).")] = None,
) -> None:
    """Check toolchains and report every problem with file:line:col."""
    call(toolchain_commands.validate, names or [])
