"""``toolrun self``: toolrun itself (self_commands.py does the work)."""

from __future__ import annotations

from typing import Annotated

import typer

from .invoke import call
from .options import CONTEXT_SETTINGS, Offline, Pre

self_app = typer.Typer(
    help="toolrun itself: upgrade it from the team's registry.",
    context_settings=CONTEXT_SETTINGS,
    no_args_is_help=True,
)


@self_app.command(
    "upgrade",
    epilog="Exit codes: 0 upgraded or up to date; 2 another installer manages toolrun "
    "(the hint says its command); 3 a registry; 4 no registry offers toolrun; 5 a sha256.",
)
def self_upgrade(
    check: Annotated[
        bool, typer.Option("--check", help="Only say whether a newer toolrun is published.")
    ] = False,
    pre: Pre = False,
    no_deps: Annotated[
        bool,
        typer.Option("--no-deps", help="Let pip install the wheel alone, not its dependencies."),
    ] = False,
    offline: Offline = False,
) -> None:
    """Upgrade toolrun from the team's registry (where `toolrun registry publish-self` put
    its wheel), with pip, in the environment it runs from. Same as `toolrun -u`."""
    from . import self_commands

    call(self_commands.upgrade, check=check, pre=pre, no_deps=no_deps, offline=offline)
