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


def try_fast_path(args: list[str]) -> int | None:
    """The exit code if ``args`` was served here, None to fall through to typer."""
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
