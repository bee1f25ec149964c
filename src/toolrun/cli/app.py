"""The typer app: the global options, the command groups (one module each: tool_app.py, ...)
and the run commands. It parses arguments and calls the command modules, nothing more."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer
import typer.main
from typer.completion import completion_init  # type: ignore[attr-defined]

from .. import __version__
from . import history_commands, run_commands
from .cluster_app import cluster_app
from .config_app import config_app
from .daemon_app import daemon_app
from .errors import EXIT_CODES, closed_stdout
from .history_app import history_app
from .hook_app import hook_app
from .invoke import GLOBAL_OPTIONS, call, call_plain
from .notify_app import notify_app
from .options import CONTEXT_SETTINGS, Json, Offline, Pre, RunId, Timeout
from .registry_app import registry_app
from .schedule_app import schedule_app
from .self_app import self_app
from .tool_app import tool_app
from .toolchain_app import toolchain_app

# add_completion=False hides typer's --install-completion (we ship `toolrun completion`), but
# it also skips registering the shells that answer completion requests; do that here.
completion_init()

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
app.add_typer(tool_app, name="tool")
app.add_typer(toolchain_app, name="toolchain")
app.add_typer(history_app, name="history")
app.add_typer(registry_app, name="registry")
app.add_typer(config_app, name="config")
app.add_typer(daemon_app, name="daemon")
app.add_typer(cluster_app, name="cluster")
app.add_typer(schedule_app, name="schedule")
app.add_typer(hook_app, name="hook")
app.add_typer(notify_app, name="notify")
app.add_typer(self_app, name="self")


def _version(value: bool) -> None:
    if value:
        print(f"toolrun {__version__}")
        raise typer.Exit(0)


def _upgrade(value: bool) -> None:
    if value:
        from . import self_commands

        call(self_commands.upgrade)
        raise typer.Exit(0)


@app.callback()
def main(
    version: Annotated[
        bool,
        typer.Option(
            "-v", "--version", callback=_version, is_eager=True, help="Print the version."
        ),
    ] = False,
    upgrade: Annotated[
        bool,
        typer.Option(
            "-u",
            "--upgrade",
            callback=_upgrade,
            is_eager=True,
            help="Upgrade toolrun from the team's registry (toolrun self upgrade).",
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


# -- runs -------------------------------------------------------------------------------------

RUN_EXIT_CODES = (
    "Exit codes: 0 succeeded, 1 failed, 124 timed out, 130 cancelled, 141 output closed; "
    "2 usage, 3 toolchain or config error, 4 unknown tool or toolchain, 6 storage."
)


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
    on: Annotated[
        list[str] | None,
        typer.Option(
            "--on",
            metavar="KEY=VALUE",
            help="Run where these labels are (os=linux; repeatable), for steps without their "
            "own runs_on.",
            show_default=False,
        ),
    ] = None,
    priority: Annotated[
        str | None,
        typer.Option(
            "--priority",
            metavar="PRIORITY",
            help="high, normal, low or a number (-1000..1000): higher starts first in a "
            "daemon's queue. Default: the toolchain's priority.",
            show_default=False,
        ),
    ] = None,
    locked: Annotated[
        bool | None,
        typer.Option(
            "--locked/--unlocked",
            help="Use exactly the versions and digests of TOOLCHAIN.lock (toolrun lock), "
            "refusing anything else (exit 5). Default: config's locked.",
            show_default=False,
        ),
    ] = None,
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
        on=on or [],
        priority=priority,
        locked=locked,
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


@app.command(
    "cmd",
    context_settings={**CONTEXT_SETTINGS, "ignore_unknown_options": True},
    epilog="A toolchain's run exits as toolrun run does; a tool's with its own exit code.",
)
def cmd(
    words: Annotated[
        list[str],
        typer.Argument(
            help="toolchain=NAME [param=value ...], or cmd=TOOL [version=SPEC] -- ARGS.",
            show_default=False,
        ),
    ],
    timeout: Timeout = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print events as NDJSON.")] = False,
    offline: Offline = False,
) -> None:
    """Start a toolchain or a tool the way POST /cmd does (the original design's `toolrun cmd
    toolchain=export-job`), here or with --remote; its output as plain lines."""
    from . import seed_commands

    before, _, after = _split_at_dashes(words)
    call(seed_commands.cmd, before, after, timeout=timeout, as_json=as_json, offline=offline)


def _split_at_dashes(words: list[str]) -> tuple[list[str], bool, list[str]]:
    """The words before ``--`` and after: click drops the ``--`` itself, so where it was is
    read from the command line as run_app was given it."""
    if "--" in _given:
        tail = _given[_given.index("--") + 1 :]
        if tail and words[len(words) - len(tail) :] == tail:
            return words[: len(words) - len(tail)], True, tail
    return words, False, []


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


@app.command(
    "lock",
    epilog="Exit codes: 0 written or up to date; 1 --check found it missing, "
    "stale or incomplete; 3 a registry; 4 no version matches.",
)
def lock(
    toolchain: Annotated[str, typer.Argument(help="A toolchain name (or a .yaml path).")],
    platform: Annotated[
        str | None,
        typer.Option(
            "--platform",
            help="Platforms to record digests for, comma-separated (default: this one's, "
            "or the lock's own).",
        ),
    ] = None,
    check: Annotated[
        bool, typer.Option("--check", help="Write nothing; exit 1 if the lock is not current.")
    ] = False,
    upgrade: Annotated[
        bool, typer.Option("--upgrade", help="Re-resolve every spec, not only new ones.")
    ] = False,
) -> None:
    """Write TOOLCHAIN.lock beside the toolchain: each step's tool pinned, with digests."""
    from . import lock_commands

    call(lock_commands.lock, toolchain, platforms=platform, check=check, upgrade=upgrade)


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


@app.command("pause")
def pause(
    run_id: RunId,
    now: Annotated[
        bool,
        typer.Option("--now", help="Freeze the running steps' processes too (not on Windows)."),
    ] = False,
) -> None:
    """Pause a run: it starts no further step (--now: its running steps stop where they are).
    Paused time does not count against its timeouts."""
    call(history_commands.control, run_id, wanted=2 if now else 1)


@app.command("resume")
def resume(run_id: RunId) -> None:
    """Go on with a paused run."""
    call(history_commands.control, run_id, wanted=0)


# -- cluster ----------------------------------------------------------------------------------


@app.command("worker")
def worker(
    address: Annotated[
        str, typer.Argument(help="The scheduler: tcp://HOST:8786 (loopback) or tls://HOST:8786.")
    ],
    label: Annotated[
        list[str] | None,
        typer.Option(
            "--label",
            help="KEY=VALUE this worker offers (repeat; os= and arch= are added by themselves).",
        ),
    ] = None,
    slots: Annotated[int, typer.Option("--slots", help="Steps it runs at once.")] = 1,
    name: Annotated[
        str | None, typer.Option("--name", help="Its name (default: host name and pid).")
    ] = None,
    registry: Annotated[
        list[str] | None,
        typer.Option(
            "--registry",
            help="Install tools from here first (a folder or URL; repeat), then the daemon's.",
        ),
    ] = None,
    timeout: Annotated[
        str, typer.Option("--timeout", help="How long to wait for the scheduler to answer.")
    ] = "30s",
    certs: Annotated[
        Path | None,
        typer.Option(
            "--certs",
            help="A folder of ca.crt, worker.crt and worker.key (toolrun cluster certs): "
            "needed for tls://.",
        ),
    ] = None,
) -> None:
    """Join a cluster and run the steps a cluster daemon sends here, until SIGTERM or Ctrl+C."""
    from . import cluster_commands

    call(
        cluster_commands.worker,
        address,
        labels=label or [],
        slots=slots,
        name=name,
        registries=registry or [],
        timeout=timeout,
        certs=certs,
    )


@app.command("workers")
def workers(as_json: Json = False) -> None:
    """The workers of a cluster daemon (--remote): labels, slots, steps running, heartbeat."""
    from . import cluster_commands

    call(cluster_commands.workers, as_json=as_json)


# -- looking after toolrun --------------------------------------------------------------------


@app.command(
    "doctor",
    epilog="Exit codes: 0 nothing wrong (warnings may be listed); 1 a problem was found.",
)
def doctor(as_json: Json = False, offline: Offline = False) -> None:
    """Check the data folder, config.toml, the history, the registries, containment and the
    daemon's and cluster's settings: one line each, with what to do about what is wrong."""
    from . import doctor_commands

    call(doctor_commands.doctor, as_json=as_json, offline=offline)


@app.command("init", epilog="Exit codes: 0 written; 2 a file it would write exists already.")
def init(
    path: Annotated[
        Path | None, typer.Argument(help="The folder to set up (default: here).")
    ] = None,
    directory: Annotated[
        Path | None, typer.Option("--dir", help="The folder to set up, as PATH.")
    ] = None,
) -> None:
    """Start from nothing: toolchains/hello.yaml (commented) and a folder registry holding
    one tool, so `toolrun run hello` works there at once. Never overwrites a file."""
    from . import init_commands

    def action() -> None:
        if path is not None and directory is not None and path != directory:
            from ..errors import UsageError

            raise UsageError("give the folder once: PATH or --dir, not both")
        init_commands.init(path or directory or Path.cwd())

    call_plain(action)


@app.command("stats")
def stats(
    toolchain: Annotated[
        str | None, typer.Argument(help="Only this toolchain (default: every one).")
    ] = None,
    since: Annotated[
        str,
        typer.Option("--since", help="Runs created since: an age (30d, 12h) or an ISO date."),
    ] = "30d",
    until: Annotated[
        str | None,
        typer.Option("--until", help="And before this (default: now).", show_default=False),
    ] = None,
    as_json: Json = False,
) -> None:
    """Each toolchain's runs, success rate and p50/p95 durations, from this machine's history."""
    from . import stats_commands

    call(stats_commands.stats, toolchain, since=since, until=until, as_json=as_json)


@app.command("completion")
def completion(
    shell: Annotated[str, typer.Argument(help="bash, zsh, fish or powershell.")],
) -> None:
    """Print a shell completion script (the same as completions/ in the repository)."""
    from .completion import completion_script

    call_plain(lambda: print(completion_script(shell), end=""))


_given: list[str] = []  # the command line run_app parses (see _split_at_dashes)


def run_app(args: list[str]) -> int:
    errors = click_errors()
    args = bare_cluster(args)
    _given[:] = args
    command = typer.main.get_command(app)
    whole_short_help(command)
    try:
        code = command.main(args, prog_name="toolrun", standalone_mode=False)
    except errors.NoArgsIsHelpError as error:  # `toolrun`, `toolrun tool`: their help
        if error.ctx is not None:
            try:
                print(error.ctx.get_help())
            except BrokenPipeError:  # `toolrun | head`
                return closed_stdout().code
        return 0
    except errors.UsageError as error:
        return usage_error(error)
    except errors.ClickException as error:  # a file click itself could not open, say
        print(f"toolrun: error: {error.format_message()}", file=sys.stderr)
        return int(error.exit_code)
    except typer.Abort:
        print("toolrun: interrupted", file=sys.stderr)
        return 130
    except SystemExit as exit:
        code = exit.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    return code if isinstance(code, int) else 0


def click_errors() -> Any:
    """Click's exceptions module: typer 0.2x carries its own copy of click."""
    import importlib

    try:
        return importlib.import_module("typer._click.exceptions")
    except ImportError:
        return importlib.import_module("click.exceptions")


def usage_error(error: Any) -> int:
    """Click's usage errors in toolrun's own form, ``toolrun: error: …`` with a hint: exit 2,
    as every other usage error."""
    message = error.format_message()
    where = error.ctx.command_path if error.ctx is not None else "toolrun"
    command = where.removeprefix("toolrun").strip()
    print(f"toolrun: error: {command + ': ' if command else ''}{message}", file=sys.stderr)
    print(f"  hint: see {where} --help", file=sys.stderr)
    return 2


def whole_short_help(command: Any) -> None:
    """Each command's line in a group's help is its docstring's whole first paragraph, not
    click's first 45 characters and an ellipsis."""
    for sub in getattr(command, "commands", {}).values():
        if not sub.short_help and sub.help:
            sub.short_help = " ".join(sub.help.split("\n\n")[0].split())
        whole_short_help(sub)


def bare_cluster(args: list[str]) -> list[str]:
    """``toolrun daemon --cluster`` alone means: host the scheduler here. Click has no option
    whose value may be left out, so the bare form is given its value before parsing."""
    if "daemon" not in args or "--cluster" not in args:
        return args
    from ..cluster.hosting import HERE

    out = list(args)
    index = out.index("--cluster")
    following = out[index + 1] if index + 1 < len(out) else None
    if following is None or following.startswith("-"):
        out.insert(index + 1, HERE)
    return out
