"""``toolrun history``: list, delete, repair and prune the runs kept on this machine
(history_commands.py does the work)."""

from __future__ import annotations

from typing import Annotated

import typer

from . import history_commands
from .invoke import call
from .options import CONTEXT_SETTINGS, Json

history_app = typer.Typer(
    help="The runs kept on this machine: list, delete, prune.",
    context_settings=CONTEXT_SETTINGS,
    invoke_without_command=True,
)


@history_app.callback()
def history(
    context: typer.Context,
    status: Annotated[str | None, typer.Option("--status", help="Only runs in this state.")] = None,
    toolchain: Annotated[
        str | None, typer.Option("--toolchain", help="Only runs of this toolchain.")
    ] = None,
    worker: Annotated[
        str | None, typer.Option("--worker", help="Only runs with a step run on this worker.")
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
        worker=worker,
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
