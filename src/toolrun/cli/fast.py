"""Commands answered without importing typer, whose import alone costs several times the
start-up of Python itself. Only exact, simple argument forms are served here; anything else
(--help, a typo, an option out of place) goes to the typer app, which calls the very same
command functions and reports usage errors its own way.
"""

from __future__ import annotations

from collections.abc import Callable

from .context import Context
from .errors import handled
from .notices import told_about

Command = Callable[[Context], None]


def _tool_list(args: list[str]) -> tuple[Command, bool] | None:
    flags = set(args)
    if len(flags) != len(args) or not flags <= {"--json", "--available", "--offline"}:
        return None
    from . import tool_commands

    def command(ctx: Context) -> None:
        tool_commands.list_tools(ctx, available="--available" in flags, as_json="--json" in flags)

    return command, "--offline" in flags


def _tool_install(args: list[str]) -> tuple[Command, bool] | None:
    """``tool install SPEC... [--pre] [--offline]``."""
    flags = {arg for arg in args if arg.startswith("-")}
    specs = [arg for arg in args if not arg.startswith("-")]
    if not specs or not flags <= {"--pre", "--offline"}:
        return None
    from . import tool_commands

    def command(ctx: Context) -> None:
        tool_commands.install(ctx, specs, pre="--pre" in flags)

    return command, "--offline" in flags


def _exec(args: list[str]) -> tuple[Command, bool] | None:
    """``exec [--offline] SPEC [--] ARGS...``: anything after the spec belongs to the tool."""
    offline = False
    while args and args[0] == "--offline":
        offline, args = True, args[1:]
    if not args or args[0].startswith("-"):
        return None  # --help, --timeout and friends
    spec, rest = args[0], args[1:]
    if rest and rest[0] == "--":
        rest = rest[1:]
    elif any(arg.startswith("-") for arg in rest):
        return None  # what an option before "--" means is typer's call
    import os

    if not os.environ.get("TOOLRUN_REMOTE"):
        from ..executors.containment import get_ready

        get_ready()  # making the tool's cgroup takes the kernel a while: start it now
    from . import run_commands

    return (lambda ctx: run_commands.exec_(ctx, spec, rest)), offline


_RUN_FLAGS = {"--plain", "--json", "--pre", "--offline", "--locked"}


def _run(args: list[str]) -> tuple[Command, bool] | None:
    """``run TOOLCHAIN [key=value ...] [--plain|--json] [--pre] [--offline] [--locked]``: the form
    scripts and CI use. Typer and the pydantic it imports cost a one-step run three times
    what the run itself does (issue 16)."""
    flags = [arg for arg in args if arg.startswith("-")]
    words = [arg for arg in args if not arg.startswith("-")]
    if not words or "=" in words[0] or not set(flags) <= _RUN_FLAGS:
        return None
    name, assignments = words[0], words[1:]
    if not all("=" in arg for arg in assignments) or {"--plain", "--json"} <= set(flags):
        return None  # (--plain --json, a flag twice: typer's to judge)
    if len(set(flags)) != len(flags):
        return None
    from . import run_commands

    def command(ctx: Context) -> None:
        run_commands.run(
            ctx,
            name,
            assignments,
            as_json="--json" in flags,
            pre="--pre" in flags,
            tui=False if "--plain" in flags else None,
            locked=True if "--locked" in flags else None,
        )

    return command, "--offline" in flags


_HISTORY_OPTIONS = {"--status", "--toolchain", "--since", "--until", "--limit", "--page"}


def _history(args: list[str]) -> tuple[Command, bool] | None:
    """``history`` with its filters, the form scripts poll: no subcommand, no --help."""
    options: dict[str, str] = {}
    as_json = plain = False
    index = 0
    while index < len(args):
        arg = args[index]
        name, equals, value = arg.partition("=")
        if arg in ("--json", "--plain"):
            as_json = as_json or arg == "--json"
            plain = plain or arg == "--plain"
        elif name in _HISTORY_OPTIONS and name not in options:
            if not equals:
                index += 1
                if index == len(args):
                    return None
                value = args[index]
            options[name] = value
        else:
            return None
        index += 1
    try:
        limit = int(options.get("--limit", "20"))
        page = int(options.get("--page", "1"))
    except ValueError:
        return None
    from . import history_commands

    def command(ctx: Context) -> None:
        history_commands.history(
            ctx,
            status=options.get("--status"),
            toolchain=options.get("--toolchain"),
            since=options.get("--since"),
            until=options.get("--until"),
            limit=limit,
            page=page,
            as_json=as_json,
            tui=False if plain else None,
        )

    return command, False


FORMS: dict[tuple[str, ...], Callable[[list[str]], tuple[Command, bool] | None]] = {
    ("exec",): _exec,
    ("run",): _run,
    ("tool", "list"): _tool_list,
    ("tool", "install"): _tool_install,
    ("history",): _history,
}


def try_fast_path(args: list[str]) -> int | None:
    """The exit code if ``args`` was served here, None to fall through to typer."""
    for words, parse in FORMS.items():
        if tuple(args[: len(words)]) == words:
            found = parse(args[len(words) :])
            if found is None:
                return None
            command, offline = found
            with handled() as outcome:
                ctx = Context.from_environment(offline=offline)
                try:
                    command(ctx)
                finally:
                    told_about(ctx)
                    # It ran tools: auto_update's turn (its module stays unread when off).
                    if "engine" in ctx.__dict__ and ctx.config.get("auto_update") != "off":
                        from .auto_update import after_command

                        after_command(ctx)
                    ctx.close()
            return outcome[0]
    return None
