"""``toolrun tool``: install, list and inspect versioned tools (tool_commands.py does the work)."""

from __future__ import annotations

from typing import Annotated

import typer

from . import tool_commands
from .invoke import call
from .options import CONTEXT_SETTINGS, Json, Offline, Pre

tool_app = typer.Typer(
    help="Install, list and inspect versioned tools.",
    context_settings=CONTEXT_SETTINGS,
    no_args_is_help=True,
)


@tool_app.command("install")
def tool_install(
    specs: Annotated[list[str], typer.Argument(help="Specs: uexp==0.1.0, uexp@0.1, uexp ...")],
    pre: Pre = False,
    offline: Offline = False,
) -> None:
    """Install tools (already installed counts as success)."""
    call(tool_commands.install, specs, pre=pre, offline=offline)


@tool_app.command("list")
def tool_list(
    available: Annotated[
        bool, typer.Option("--available", help="Also list what the registries offer.")
    ] = False,
    as_json: Json = False,
    offline: Offline = False,
) -> None:
    """List installed tools."""
    call(tool_commands.list_tools, available=available, as_json=as_json, offline=offline)


@tool_app.command("versions")
def tool_versions(
    name: Annotated[str, typer.Argument(help="A tool name.")],
    as_json: Json = False,
    offline: Offline = False,
) -> None:
    """List a tool's versions, installed and available."""
    call(tool_commands.versions, name, as_json=as_json, offline=offline)


@tool_app.command("which")
def tool_which(
    spec: Annotated[str, typer.Argument(help="A spec, resolved among installed versions.")],
    as_json: Json = False,
    pre: Pre = False,
) -> None:
    """Show the installed version a spec resolves to, its folder and its command."""
    call(tool_commands.which, spec, as_json=as_json, pre=pre)


@tool_app.command("remove")
def tool_remove(
    spec: Annotated[str, typer.Argument(help="NAME==X.Y.Z, or a spec with --all.")],
    remove_all: Annotated[
        bool, typer.Option("--all", help="Remove every installed version the spec matches.")
    ] = False,
) -> None:
    """Remove an installed tool version."""
    call(tool_commands.remove, spec, remove_all=remove_all)


# uv's and pip's word for it, beside ours
tool_app.command("uninstall", help="Remove an installed tool version (the same as tool remove).")(
    tool_remove
)


@tool_app.command("search")
def tool_search(
    word: Annotated[str, typer.Argument(help="Found in a tool's name or description.")],
    as_json: Json = False,
    offline: Offline = False,
) -> None:
    """Find tools by name or description, installed and in the registries."""
    from . import search_commands

    call(search_commands.search, word, as_json=as_json, offline=offline)


@tool_app.command("upgrade")
def tool_upgrade(
    names: Annotated[
        list[str] | None, typer.Argument(help="Tools to upgrade (default: all installed).")
    ] = None,
    pre: Pre = False,
) -> None:
    """Install the newest version of tools, keeping the old ones."""
    call(tool_commands.upgrade, names or [], pre=pre)


@tool_app.command("outdated")
def tool_outdated(
    policy: Annotated[
        str | None,
        typer.Option(
            "--policy",
            help="Which newer versions count: patch (same X.Y), minor (same X) or major "
            "(any). Default: update_policy in config.toml (minor).",
            show_default=False,
        ),
    ] = None,
    as_json: Json = False,
    pre: Pre = False,
    offline: Offline = False,
) -> None:
    """Installed tools with newer versions in the registries, by policy (and toolrun itself)."""
    from . import update_commands

    call(update_commands.outdated, policy=policy, as_json=as_json, pre=pre, offline=offline)


@tool_app.command("verify")
def tool_verify(
    specs: Annotated[
        list[str] | None, typer.Argument(help="Tools to check (default: all).")
    ] = None,
) -> None:
    """Re-hash installed files and name any that changed."""
    call(tool_commands.verify, specs or [])
