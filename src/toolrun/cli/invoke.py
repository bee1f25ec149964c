"""How a parsed command is called: with a Context made from the global options given before
the command (--remote, --token, ...), its errors turned into a message and an exit code."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import typer

from .auto_update import after_command
from .context import Context
from .errors import handled
from .notices import told_about

# --remote and --token, given before the command; TOOLRUN_REMOTE and TOOLRUN_TOKEN otherwise.
GLOBAL_OPTIONS: dict[str, Any] = {"remote": None, "token": None, "cacert": None, "insecure": False}


def call(command: Callable[..., None], *args: Any, offline: bool = False, **kwargs: Any) -> None:
    """Run a command with a fresh Context; errors become a message and an exit code."""

    def action() -> None:
        ctx = Context.from_environment(offline=offline, **GLOBAL_OPTIONS)
        try:
            command(ctx, *args, **kwargs)
        finally:
            told_about(ctx)
            after_command(ctx)  # auto_update: after the command's own work
            ctx.close()

    call_plain(action)


def call_plain(action: Callable[[], None]) -> None:
    """Run a command that needs no Context; errors become a message and an exit code."""
    with handled() as outcome:
        action()
    if outcome[0]:
        raise typer.Exit(outcome[0])
