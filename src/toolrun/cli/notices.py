"""What became of the notifications a command's runs made (automation/notifier.py): sent at
the end of the command, and said when they could not be. For the typer app and the fast path
alike; it imports nothing unless config.toml names channels."""

from __future__ import annotations

from .output import warn

TYPE_CHECKING = False
if TYPE_CHECKING:
    from .context import Context


def told_about(ctx: Context) -> None:
    notifier = ctx.__dict__.get("notifier")  # made only if the command ran something
    if notifier is None:
        return
    notifier.send_waiting()
    for problem in notifier.problems:
        warn(problem)
    for delivery, outcome, answer in notifier.outcomes:
        if outcome == "sent":
            continue
        left = "; left in the outbox for a daemon on this store (toolrun notify list)"
        warn(
            f"notification to {delivery.channel} not sent: {answer.error}"
            + (left if outcome == "retry" else "")
        )
