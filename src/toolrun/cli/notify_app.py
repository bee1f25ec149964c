"""``toolrun notify``: notifications waiting in the outbox, and a test message."""

from __future__ import annotations

from typing import Annotated

import typer

from .invoke import call
from .options import CONTEXT_SETTINGS, Json

notify_app = typer.Typer(
    help="Notifications: the outbox's pending and failed deliveries, and a test message.",
    context_settings=CONTEXT_SETTINGS,
    no_args_is_help=True,
)


@notify_app.command("list")
def notify_list(
    as_json: Json = False,
    every: Annotated[bool, typer.Option("--all", help="Sent ones too.")] = False,
) -> None:
    """Deliveries pending (with their next try) and failed (with the reason)."""
    from . import notify_commands

    call(notify_commands.list_deliveries, as_json=as_json, every=every)


@notify_app.command("test", epilog="Exit code 1 when the channel did not take the message.")
def notify_test(
    channel: Annotated[str, typer.Argument(help="A channel named in config.toml.")],
) -> None:
    """Send a test message to a channel now and say what it answered."""
    from . import notify_commands

    call(notify_commands.test, channel)
