"""``toolrun cluster``: what a cluster needs beyond its daemon and workers (certificates)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .invoke import call_plain
from .options import CONTEXT_SETTINGS

cluster_app = typer.Typer(
    help="Set up a cluster: certificates for its scheduler, daemon and workers.",
    context_settings=CONTEXT_SETTINGS,
    no_args_is_help=True,
)


@cluster_app.command("certs")
def certs(
    out_dir: Annotated[Path, typer.Argument(help="Where to write them (made if missing).")],
    worker: Annotated[
        list[str] | None,
        typer.Option("--worker", help="A worker to make a certificate for (repeat)."),
    ] = None,
    host: Annotated[
        list[str] | None,
        typer.Option(
            "--host", help="A name or address the scheduler is reached by (repeat; informative)."
        ),
    ] = None,
    days: Annotated[int, typer.Option("--days", help="How long the new certificates last.")] = 825,
) -> None:
    """Make a CA and certificates: daemon/ for the daemon's machine, workers/NAME/ for each
    worker's. Run again with the same OUT_DIR to add workers signed by the same CA."""
    from . import cluster_commands

    call_plain(
        lambda: cluster_commands.certs(out_dir, workers=worker or [], hosts=host or [], days=days)
    )
