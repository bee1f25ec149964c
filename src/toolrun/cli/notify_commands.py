"""``toolrun notify list|test``: the outbox's deliveries, and a test message to a channel."""

from __future__ import annotations

import time

from ..automation.channels import notifications_from_config
from ..automation.delivery import send_now
from ..automation.notifier import LEASE, Policy
from ..automation.outbox import Delivery, Outbox
from ..errors import NotFoundError, UsageError
from .context import Context
from .errors import ExitCode
from .output import info, print_json, print_table


def _local(ctx: Context) -> None:
    if ctx.remote:
        raise UsageError("toolrun notify works on the store on this machine, not --remote")


def delivery_json(delivery: Delivery) -> dict[str, object]:
    return {
        "id": delivery.id,
        "run_id": delivery.run_id,
        "channel": delivery.channel,
        "event": delivery.event,
        "status": delivery.status,
        "attempts": delivery.attempts,
        "created_at": delivery.created_at,
        "next_at": delivery.next_at if delivery.status == "pending" else None,
        "last_error": delivery.last_error,
        "sent_at": delivery.sent_at,
    }


def list_deliveries(ctx: Context, *, as_json: bool = False, every: bool = False) -> None:
    _local(ctx)
    statuses = ("pending", "failed", "sent") if every else ("pending", "failed")
    rows = [delivery_json(d) for d in Outbox(ctx.store).deliveries(statuses)]
    if as_json:
        print_json(rows)
        return
    if not rows:
        info("nothing pending or failed in the outbox" + (" (and nothing sent)" if every else ""))
        return
    print_table(
        ["id", "run", "channel", "event", "status", "tries", "next", "last error"],
        [
            [
                str(r["id"]),
                str(r["run_id"]),
                str(r["channel"]),
                str(r["event"]),
                str(r["status"]),
                str(r["attempts"]),
                _moment(r["next_at"]),
                str(r["last_error"] or "-")[:80],
            ]
            for r in rows
        ],
    )


def _moment(value: object) -> str:
    if not isinstance(value, float | int):
        return "-"
    return time.strftime("%H:%M:%S", time.localtime(value))


def test(ctx: Context, name: str) -> None:
    """Send a test message to a channel now, and say what it answered."""
    _local(ctx)
    notifications = notifications_from_config(ctx.config)
    channel = notifications.channels.get(name)
    if channel is None:
        known = ", ".join(notifications.channels) or "none: add [[channels]] to config.toml"
        raise NotFoundError(f"no channel named {name!r} (known: {known})")
    outbox = Outbox(ctx.store)
    recorded = outbox.record_test(channel)
    due = [d for d in outbox.claim(LEASE, run_id=recorded.run_id)]
    policy = Policy.from_config(ctx.config)
    [(_, outcome, answer)] = send_now(outbox, notifications, due, policy)
    if outcome == "sent":
        info(f"sent a test message to {name} ({channel.kind}, {channel.shown})")
        return
    print(f"toolrun: {name} ({channel.kind}, {channel.shown}) did not take it: {answer.error}")
    raise ExitCode(1)
