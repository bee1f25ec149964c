"""The typer app: it parses arguments and calls the command modules, nothing more."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from typer.completion import completion_init  # type: ignore[attr-defined]

from .. import __version__
from . import (
    config_commands,
    daemon_commands,
    history_commands,
    registry_commands,
    run_commands,
    tool_commands,
    toolchain_commands,
)
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
toolchain_app = typer.Typer(
    help="List, show and validate toolchains.",
    context_settings=CONTEXT_SETTINGS,
    no_args_is_help=True,
)
history_app = typer.Typer(
    help="The runs kept on this machine: list, delete, prune.",
    context_settings=CONTEXT_SETTINGS,
    invoke_without_command=True,
)
daemon_app = typer.Typer(
    help="Serve the engine over HTTP (the seed's /cmd and /result, a REST API, SSE, metrics).",
    context_settings=CONTEXT_SETTINGS,
    invoke_without_command=True,
)
token_app = typer.Typer(
    help="Tokens that callers of the daemon present (stored hashed in config.toml).",
    context_settings=CONTEXT_SETTINGS,
    no_args_is_help=True,
)
daemon_app.add_typer(token_app, name="token")
app.add_typer(tool_app, name="tool")
app.add_typer(toolchain_app, name="toolchain")
app.add_typer(history_app, name="history")
app.add_typer(registry_app, name="registry")
app.add_typer(config_app, name="config")
app.add_typer(daemon_app, name="daemon")

Offline = Annotated[
    bool, typer.Option("--offline", help="Never contact an HTTP registry; use what is installed.")
]
Pre = Annotated[bool, typer.Option("--pre", help="Let prereleases match.")]
Json = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


# --remote and --token, given before the command; TOOLRUN_REMOTE and TOOLRUN_TOKEN otherwise.
GLOBAL_OPTIONS: dict[str, Any] = {"remote": None, "token": None, "cacert": None, "insecure": False}


def call(command: Callable[..., None], *args: Any, offline: bool = False, **kwargs: Any) -> None:
    """Run a command with a fresh Context; errors become a message and an exit code."""

    def action() -> None:
        ctx = Context.from_environment(offline=offline, **GLOBAL_OPTIONS)
        try:
            command(ctx, *args, **kwargs)
        finally:
            ctx.close()

    call_plain(action)


def call_plain(action: Callable[[], None]) -> None:
    """Run a command that needs no Context; errors become a message and an exit code."""
    with handled() as outcome:
        action()
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
    remote: Annotated[
        str | None,
        typer.Option(
            "--remote",
            envvar="TOOLRUN_REMOTE",
            help="A daemon's URL: run, exec, history, show, logs, result, cancel and rerun "
            "act there.",
        ),
    ] = None,
    token: Annotated[
        str | None,
        typer.Option("--token", envvar="TOOLRUN_TOKEN", help="The token for --remote."),
    ] = None,
    cacert: Annotated[
        str | None,
        typer.Option(
            "--cacert",
            envvar="TOOLRUN_CACERT",
            help="Trust the daemon's certificate when this CA (PEM) signed it (--remote "
            "https://...; SSL_CERT_FILE is honoured too).",
        ),
    ] = None,
    insecure: Annotated[
        bool,
        typer.Option("--insecure", help="With --remote https://, do not check the certificate."),
    ] = False,
) -> None:
    """Run versioned command-line tools and toolchains."""
    GLOBAL_OPTIONS.update(remote=remote, token=token, cacert=cacert, insecure=insecure)


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
    call_plain(lambda: registry_commands.build(source, output))


@registry_app.command("rehash")
def registry_rehash(
    source: Annotated[Path, typer.Argument(help="A folder registry, or one version folder.")],
) -> None:
    """Write the sha256 of every tool file into its tool.toml's [files]."""
    call_plain(lambda: registry_commands.rehash_command(source))


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


# -- runs -------------------------------------------------------------------------------------

RUN_EXIT_CODES = (
    "Exit codes: 0 succeeded, 1 failed, 124 timed out, 130 cancelled, 141 output closed; "
    "2 usage, 3 toolchain or config error, 4 unknown tool or toolchain, 6 storage."
)
Timeout = Annotated[
    str | None,
    typer.Option("--timeout", help="End the run after this long (30s, 10m, 1h30m)."),
]


@app.command("run", epilog=RUN_EXIT_CODES)
def run(
    toolchain: Annotated[str, typer.Argument(help="A toolchain name (or a .yaml path).")],
    params: Annotated[
        list[str] | None, typer.Argument(help="Parameters as key=value.", show_default=False)
    ] = None,
    plain: Annotated[
        bool, typer.Option("--plain", help="Plain output, one prefixed line per line.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print events as NDJSON.")] = False,
    tui: Annotated[
        bool, typer.Option("--tui", help="The live terminal UI even when not at a terminal.")
    ] = False,
    timeout: Timeout = None,
    pre: Pre = False,
    offline: Offline = False,
) -> None:
    """Run a toolchain: live output, a summary, and the run kept in the history.

    At a terminal the run is shown in a live UI; --plain (or a pipe, TERM=dumb, CI) prints
    plain lines instead.
    """
    call(
        run_commands.run,
        toolchain,
        params or [],
        as_json=as_json,
        timeout=timeout,
        pre=pre,
        tui=True if tui else (False if plain else None),
        offline=offline,
    )


@app.command(
    "exec",
    context_settings={**CONTEXT_SETTINGS, "ignore_unknown_options": True},
    epilog="Exits with the tool's own exit code (127 if it could not start).",
)
def exec_(
    spec: Annotated[str, typer.Argument(help="TOOL or TOOL@SPEC, e.g. uexp@0.1.")],
    args: Annotated[
        list[str] | None, typer.Argument(help="Arguments for the tool (after --).")
    ] = None,
    timeout: Timeout = None,
    offline: Offline = False,
) -> None:
    """Run one tool; its output passes through unchanged and the run is recorded."""
    call(run_commands.exec_, spec, args or [], timeout=timeout, offline=offline)


@app.command("rerun", epilog=RUN_EXIT_CODES)
def rerun(
    run_id: Annotated[str, typer.Argument(help="The run to repeat (an id, or last).")],
    from_failed: Annotated[
        bool,
        typer.Option("--from-failed", help="Keep the succeeded steps and their workspace."),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print events as NDJSON.")] = False,
    plain: Annotated[
        bool, typer.Option("--plain", help="Plain output, one prefixed line per line.")
    ] = False,
) -> None:
    """Run a past run again: same toolchain text, params and tool versions."""
    call(
        run_commands.rerun,
        run_id,
        from_failed=from_failed,
        as_json=as_json,
        tui=False if plain else None,
    )


@history_app.callback()
def history(
    context: typer.Context,
    status: Annotated[str | None, typer.Option("--status", help="Only runs in this state.")] = None,
    toolchain: Annotated[
        str | None, typer.Option("--toolchain", help="Only runs of this toolchain.")
    ] = None,
    since: Annotated[
        str | None, typer.Option("--since", help="Started at or after: 2025-02-08, 2h, 7d.")
    ] = None,
    until: Annotated[str | None, typer.Option("--until", help="Started before.")] = None,
    limit: Annotated[int, typer.Option("--limit", help="Runs per page.")] = 20,
    page: Annotated[int, typer.Option("--page", help="Page number, from 1.")] = 1,
    as_json: Json = False,
    plain: Annotated[bool, typer.Option("--plain", help="A plain table.")] = False,
    tui: Annotated[
        bool, typer.Option("--tui", help="Open the browser even where it would not be.")
    ] = False,
) -> None:
    """List runs, newest first (a browser at a terminal; a table or JSON elsewhere)."""
    if context.invoked_subcommand is not None:
        return
    call(
        history_commands.history,
        status=status,
        toolchain=toolchain,
        since=since,
        until=until,
        limit=limit,
        page=page,
        as_json=as_json,
        tui=True if tui else False if plain else None,
    )


@history_app.command("delete")
def history_delete(
    run_ids: Annotated[list[str], typer.Argument(help="Runs to delete.")],
) -> None:
    """Delete runs and their folders."""
    call(history_commands.delete, run_ids)


@history_app.command("repair")
def history_repair() -> None:
    """Rebuild the history's index (history.db) from the run folders, keeping the old one
    aside: for an index that is damaged, emptied or lost."""
    call(history_commands.repair)


@history_app.command("prune")
def history_prune(
    older_than: Annotated[
        str | None, typer.Option("--older-than", help="Delete runs older than this (30d).")
    ] = None,
    keep: Annotated[int | None, typer.Option("--keep", help="Keep the newest N runs.")] = None,
    max_size: Annotated[
        str | None, typer.Option("--max-size", help="Keep the newest runs within this size (5GB).")
    ] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only count.")] = False,
) -> None:
    """Delete finished runs by age, count and disk budget."""
    call(
        history_commands.prune, older_than=older_than, keep=keep, max_size=max_size, dry_run=dry_run
    )


RunId = Annotated[
    str, typer.Argument(help="A run id, e.g. 20250208123359-1, or last for the newest run.")
]


@app.command("show")
def show(run_id: RunId, as_json: Json = False) -> None:
    """A run's steps, tool versions with sha256, params and timings."""
    call(history_commands.show, run_id, as_json=as_json)


@app.command("logs")
def logs(
    run_id: RunId,
    follow: Annotated[
        bool, typer.Option("-f", "--follow", help="Keep following a live run.")
    ] = False,
    step: Annotated[str | None, typer.Option("--step", help="Only this step.")] = None,
    fmt: Annotated[str, typer.Option("--format", help="text or json.")] = "text",
) -> None:
    """A run's log; -f follows a run still going, from any terminal."""
    call(history_commands.logs, run_id, follow=follow, step=step, fmt=fmt)


@app.command("result", epilog="Exit codes as for run; 75 while the run is still going.")
def result(run_id: RunId) -> None:
    """The output of a finished run, with an exit code from its status."""
    call(history_commands.result, run_id)


@app.command("cancel")
def cancel(run_id: RunId) -> None:
    """Cancel a run, including one started by another toolrun process."""
    call(history_commands.cancel, run_id)


# -- toolchains -------------------------------------------------------------------------------


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


# -- completion -------------------------------------------------------------------------------


@daemon_app.callback()
def daemon(
    context: typer.Context,
    port: Annotated[int, typer.Option("-p", "--port", help="Port to listen on (0: any).")] = 8080,
    host: Annotated[
        str, typer.Option("--host", help="Address to listen on; beyond loopback needs tokens.")
    ] = "127.0.0.1",
    max_parallel: Annotated[
        int, typer.Option("--max-parallel", help="Runs going at once; more wait in the queue.")
    ] = 4,
    queue: Annotated[
        int, typer.Option("--queue", help="Runs that may wait; beyond it callers get 429.")
    ] = 100,
    grace: Annotated[
        str, typer.Option("--grace", help="On SIGTERM, how long running runs may take to end.")
    ] = "30s",
    tls_cert: Annotated[
        Path | None, typer.Option("--tls-cert", help="Serve HTTPS with this certificate (PEM).")
    ] = None,
    tls_key: Annotated[
        Path | None, typer.Option("--tls-key", help="The certificate's private key (PEM).")
    ] = None,
    log_file: Annotated[
        Path | None, typer.Option("--log-file", help="Also append the JSON log lines here.")
    ] = None,
    allow_host: Annotated[
        list[str] | None,
        typer.Option(
            "--allow-host",
            help="Answer requests sent to this name too (beside loopback and the --host "
            "address; .example.com: a whole domain; repeat the option).",
        ),
    ] = None,
    loop: Annotated[
        str,
        typer.Option("--loop", help="Event loop: auto (uvloop if installed), asyncio or uvloop."),
    ] = "auto",
    offline: Offline = False,
) -> None:
    """Serve runs over HTTP until SIGTERM or Ctrl+C (runs going are given --grace to end)."""
    if context.invoked_subcommand is not None:
        return
    call(
        daemon_commands.serve,
        host=host,
        port=port,
        max_parallel=max_parallel,
        queue=queue,
        grace=grace,
        tls_cert=tls_cert,
        tls_key=tls_key,
        log_file=log_file,
        allow_hosts=tuple(allow_host or ()),
        loop=loop,
        offline=offline,
    )


@token_app.command("create")
def token_create(
    name: Annotated[str, typer.Argument(help="Who or what holds it (shown as requester).")],
    scope: Annotated[str, typer.Option("--scope", help="read, run or admin.")] = "run",
    allow: Annotated[
        list[str] | None,
        typer.Option("--allow", help="Only these toolchains or tools (repeat the option)."),
    ] = None,
) -> None:
    """Create a token and print it once; only its sha256 is stored."""
    call(daemon_commands.token_create, name, scope=scope, allow=allow or [])


@token_app.command("list")
def token_list(as_json: Json = False) -> None:
    """List tokens (names and scopes; the secrets are not kept)."""
    call(daemon_commands.token_list, as_json=as_json)


@token_app.command("revoke")
def token_revoke(name: Annotated[str, typer.Argument(help="The token's name.")]) -> None:
    """Remove a token from config.toml."""
    call(daemon_commands.token_revoke, name)


@app.command("completion")
def completion(
    shell: Annotated[str, typer.Argument(help="bash, zsh, fish or powershell.")],
) -> None:
    """Print a shell completion script (the same as completions/ in the repository)."""
    from .completion import completion_script

    call_plain(lambda: print(completion_script(shell), end=""))


def run_app(args: list[str]) -> int:
    try:
        app(args, prog_name="toolrun", standalone_mode=True)
    except SystemExit as exit:
        code = exit.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    return 0
