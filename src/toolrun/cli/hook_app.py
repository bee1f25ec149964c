"""``toolrun hook``: hooks other systems call to start a toolchain (hook_commands.py does the
work)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .invoke import call
from .options import CONTEXT_SETTINGS, Json

hook_app = typer.Typer(
    help="Hooks: POST /hooks/NAME on a daemon, signed, starts a toolchain.",
    context_settings=CONTEXT_SETTINGS,
    no_args_is_help=True,
)


@hook_app.command("create")
def hook_create(
    name: Annotated[str, typer.Argument(help="The hook's name: the URL is /hooks/NAME.")],
    toolchain: Annotated[str, typer.Option("--toolchain", help="The toolchain it starts.")],
    secret_file: Annotated[
        Path,
        typer.Option(
            "--secret-file", help="The secret: read from here, or made and written here (0600)."
        ),
    ],
    kind: Annotated[
        str, typer.Option("--kind", help="How callers sign: github, gitlab or toolrun.")
    ] = "github",
    param: Annotated[
        list[str] | None,
        typer.Option(
            "--param",
            metavar="NAME=TEMPLATE",
            help="A param from the delivery: branch='${{ payload.ref }}' (repeat).",
        ),
    ] = None,
    condition: Annotated[
        str | None,
        typer.Option("--if", help="Run only when this holds: payload.ref == 'refs/heads/main'."),
    ] = None,
    max_parallel: Annotated[
        int, typer.Option("--max-parallel", help="Runs of this hook at once (0: no limit).")
    ] = 0,
) -> None:
    """Add a hook to config.toml (a daemon reads it when it starts)."""
    from . import hook_commands

    call(
        hook_commands.create,
        name,
        toolchain=toolchain,
        secret_file=secret_file,
        kind=kind,
        params=param or [],
        condition=condition,
        max_parallel=max_parallel,
    )


@hook_app.command("list")
def hook_list(as_json: Json = False) -> None:
    """The hooks in config.toml."""
    from . import hook_commands

    call(hook_commands.list_hooks, as_json=as_json)


@hook_app.command("remove")
def hook_remove(name: Annotated[str, typer.Argument(help="The hook's name.")]) -> None:
    """Remove a hook from config.toml."""
    from . import hook_commands

    call(hook_commands.remove, name)


@hook_app.command("sign")
def hook_sign(
    name: Annotated[str, typer.Argument(help="A toolrun-kind hook.")],
    body: Annotated[str, typer.Argument(help="The body's file, or - for stdin.")] = "-",
) -> None:
    """Print the X-Toolrun-Signature value that signs BODY for this hook, now."""
    from . import hook_commands

    call(hook_commands.sign_body, name, body)
