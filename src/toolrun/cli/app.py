"""The typer app: it parses arguments and calls the command modules, nothing more."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from typer.completion import completion_init

from .. import __version__
from . import config_commands, registry_commands, tool_commands
from .context import Context
from .errors import EXIT_CODES, handled

# add_completion=False hides typer's --install-completion (we ship `toolrun completion`), but
# it also skips registering the shells that answer completion requests; do that here.
completion_init()

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"]}
EXIT_CODE_HELP = "Exit codes: " + "; ".join(f"{code} {text}" for code, text in EXIT_CODES.items())

app = typer.Typer(
    name="toolrun",
    help="Run versioned command-line tools and toolchains.",
    epilog=EXIT_CODE_HELP,
    context_settings=CONTEXT_SETTINGS,
    add_completion=False,
    no_args_is_help=True,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
)
tool_app = typer.Typer(
    help="Install, list and inspect versioned tools.",
    context_settings=CONTEXT_SETTINGS,
    no_args_is_help=True,
)
registry_app = typer.Typer(
    help="Configure registries and publish a folder registry over HTTP.",
    context_settings=CONTEXT_SETTINGS,
    no_args_is_help=True,
)
config_app = typer.Typer(
    help="Read and change config.toml (comments are kept).",
    context_settings=CONTEXT_SETTINGS,
    no_args_is_help=True,
)
app.add_typer(tool_app, name="tool")
app.add_typer(registry_app, name="registry")
app.add_typer(config_app, name="config")

Offline = Annotated[
    bool, typer.Option("--offline", help="Never contact an HTTP registry; use what is installed.")
]
Pre = Annotated[bool, typer.Option("--pre", help="Let prereleases match.")]
Json = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def call(command: Callable[..., None], *args: Any, offline: bool = False, **kwargs: Any) -> None:
    """Run a command with a fresh Context; errors become a message and an exit code."""
    with handled() as outcome:
        command(Context.from_environment(offline=offline), *args, **kwargs)
    if outcome[0]:
        raise typer.Exit(outcome[0])


def _version(value: bool) -> None:
    if value:
        print(f"toolrun {__version__}")
        raise typer.Exit(0)


@app.callback()
def main(
    version: Annotated[
        bool,
        typer.Option(
            "-v", "--version", callback=_version, is_eager=True, help="Print the version."
        ),
    ] = False,
) -> None:
    """Run versioned command-line tools and toolchains."""


# -- tool -------------------------------------------------------------------------------------


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


@tool_app.command("upgrade")
def tool_upgrade(
    names: Annotated[
        list[str] | None, typer.Argument(help="Tools to upgrade (default: all installed).")
    ] = None,
    pre: Pre = False,
) -> None:
    """Install the newest version of tools, keeping the old ones."""
    call(tool_commands.upgrade, names or [], pre=pre)


@tool_app.command("verify")
def tool_verify(
    specs: Annotated[
        list[str] | None, typer.Argument(help="Tools to check (default: all).")
    ] = None,
) -> None:
    """Re-hash installed files and name any that changed."""
    call(tool_commands.verify, specs or [])


# -- registry ---------------------------------------------------------------------------------


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
    with handled() as outcome:
        registry_commands.build(source, output)
    if outcome[0]:
        raise typer.Exit(outcome[0])


@registry_app.command("rehash")
def registry_rehash(
    source: Annotated[Path, typer.Argument(help="A folder registry, or one version folder.")],
) -> None:
    """Write the sha256 of every tool file into its tool.toml's [files]."""
    with handled() as outcome:
        registry_commands.rehash_command(source)
    if outcome[0]:
        raise typer.Exit(outcome[0])


# -- config -----------------------------------------------------------------------------------


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


# -- completion -------------------------------------------------------------------------------


@app.command("completion")
def completion(
    shell: Annotated[str, typer.Argument(help="bash, zsh, fish or powershell.")],
) -> None:
    """Print a shell completion script (the same as completions/ in the repository)."""
    from .completion import completion_script

    with handled() as outcome:
        print(completion_script(shell), end="")
    if outcome[0]:
        raise typer.Exit(outcome[0])


def run_app(args: list[str]) -> int:
    try:
        app(args, prog_name="toolrun", standalone_mode=True)
    except SystemExit as exit:
        code = exit.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    return 0
