"""``toolrun schedule``: the schedules the daemons on this store fire (schedule_commands.py
does the work)."""

from __future__ import annotations

from typing import Annotated

import typer

from .invoke import call
from .options import CONTEXT_SETTINGS, Json

schedule_app = typer.Typer(
    help="Schedules: list them with their next and last fire, fire one now, pause, resume.",
    context_settings=CONTEXT_SETTINGS,
    no_args_is_help=True,
)

Name = Annotated[str, typer.Argument(help="A schedule's name (toolrun schedule list).")]


@schedule_app.command("list")
def schedule_list(as_json: Json = False) -> None:
    """Every schedule: its cron, next fire, last fire and the status of its last run."""
    from . import schedule_commands

    call(schedule_commands.list_schedules, as_json=as_json)


@schedule_app.command("run", epilog="Exit codes as for toolrun run.")
def schedule_run(
    name: Name,
    as_json: Annotated[bool, typer.Option("--json", help="Print events as NDJSON.")] = False,
    plain: Annotated[
        bool, typer.Option("--plain", help="Plain output, one prefixed line per line.")
    ] = False,
) -> None:
    """Fire a schedule now, in this terminal: its toolchain and params, origin schedule."""
    from . import schedule_commands

    call(schedule_commands.run_schedule, name, as_json=as_json, tui=False if plain else None)


@schedule_app.command("pause")
def schedule_pause(name: Name) -> None:
    """Stop firing a schedule (every daemon on this store) until it is resumed."""
    from . import schedule_commands

    call(schedule_commands.pause, name)


@schedule_app.command("resume")
def schedule_resume(name: Name) -> None:
    """Fire a paused schedule again from its next time (what it missed is not caught up)."""
    from . import schedule_commands

    call(schedule_commands.resume, name)
