"""``toolrun registry``: configure registries and publish a folder registry
(registry_commands.py does the work)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from . import registry_commands
from .invoke import call, call_plain
from .options import CONTEXT_SETTINGS, Json

registry_app = typer.Typer(
    help="Configure registries and publish a folder registry over HTTP.",
    context_settings=CONTEXT_SETTINGS,
    no_args_is_help=True,
)


@registry_app.command("add")
def registry_add(
    name: Annotated[str, typer.Argument(help="A short name for the registry.")],
    location: Annotated[str, typer.Argument(help="A folder, or the URL of a static tree.")],
) -> None:
    """Add a registry to config.toml (used in the order added)."""
    call(registry_commands.add, name, location)


@registry_app.command("remove")
def registry_remove(name: Annotated[str, typer.Argument(help="The registry's name.")]) -> None:
    """Remove a registry from config.toml."""
    call(registry_commands.remove, name)


@registry_app.command("list")
def registry_list(as_json: Json = False) -> None:
    """List the registries in the order they are searched."""
    call(registry_commands.list_registries, as_json=as_json)


@registry_app.command("build")
def registry_build(
    source: Annotated[Path, typer.Argument(help="A folder registry (<name>/<version>/...).")],
    output: Annotated[Path, typer.Argument(help="Where to write index.json and archives.")],
) -> None:
    """Publish a folder registry as a static HTTP tree any file server can host."""
    call_plain(lambda: registry_commands.build(source, output))


@registry_app.command("rehash")
def registry_rehash(
    source: Annotated[Path, typer.Argument(help="A folder registry, or one version folder.")],
) -> None:
    """Write the sha256 of every tool file into its tool.toml's [files]."""
    call_plain(lambda: registry_commands.rehash_command(source))


@registry_app.command("publish-self")
def registry_publish_self(
    folder: Annotated[Path, typer.Argument(help="A folder registry (the team's, or its source).")],
    wheel: Annotated[
        Path | None,
        typer.Option(
            "--wheel",
            help="A toolrun wheel (toolrun-X.Y.Z-py3-none-any.whl). Default: build one from "
            "the checkout this toolrun runs from.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Publish toolrun's own wheel in a folder registry as the tool `toolrun`, for
    `toolrun self upgrade`."""
    from . import self_commands

    call_plain(lambda: self_commands.publish(folder, wheel))
