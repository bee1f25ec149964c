"""Commands answered without importing typer, whose import alone costs several times the
start-up of Python itself. Only exact, simple argument forms are served here; anything else
(including --help) goes to the typer app, which calls the very same command functions.
"""

from __future__ import annotations

from collections.abc import Callable

from .context import Context
from .errors import handled


def _tool_list(flags: set[str]) -> Callable[[Context], None] | None:
    from . import tool_commands

    if not flags <= {"--json", "--available", "--offline"}:
        return None
    return lambda ctx: tool_commands.list_tools(
        ctx, available="--available" in flags, as_json="--json" in flags
    )


def _exec(args: list[str]) -> tuple[Callable[[Context], None], bool] | None:
    """``exec [--offline] SPEC [--] ARGS...``: anything after the spec belongs to the tool."""
    from . import run_commands

    offline = False
    while args and args[0] == "--offline":
        offline, args = True, args[1:]
    if not args or args[0].startswith("-"):
        return None  # --help, --timeout and friends: typer's job
    spec, rest = args[0], args[1:]
    if rest and rest[0] == "--":
        rest = rest[1:]
    elif any(arg.startswith("-") for arg in rest):
        return None  # typer decides what an option before "--" means
    return (lambda ctx: run_commands.exec_(ctx, spec, rest)), offline


def try_fast_path(args: list[str]) -> int | None:
    """The exit code if ``args`` was served here, None to fall through to typer."""
    if args and args[0] == "exec":
        found = _exec(args[1:])
        if found is None:
            return None
        command, offline = found
        with handled() as outcome:
            command(Context.from_environment(offline=offline))
        return outcome[0]
    if len(args) >= 2 and args[:2] == ["tool", "list"]:
        flags = set(args[2:])
        if len(flags) != len(args) - 2:
            return None
        command = _tool_list(flags)
        if command is None:
            return None
        with handled() as outcome:
            command(Context.from_environment(offline="--offline" in flags))
        return outcome[0]
    return None
