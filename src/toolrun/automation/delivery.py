"""Sending the outbox: by the terminal that ran a run (once, at the end of the command), or by
the daemon's loop, which retries with exponential backoff (and a channel's own Retry-After)
until ``notify_give_up`` has passed, then marks the delivery failed with the last reason. The
run itself is never affected."""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from ..errors import ToolrunError
from .channels import Channel, Notifications
from .formats import Outgoing, Verdict, outgoing, verdict
from .notifier import LEASE, Notifier, Policy
from .outbox import Delivery, Outbox

if TYPE_CHECKING:
    import httpx

TERMINAL_TIMEOUT = 5.0
POLL = 2.0  # seconds between the daemon's looks for deliveries another process recorded
MAX_BACKOFF = 600.0


def backoff(attempts: int, base: float) -> float:
    """Seconds before the next try after ``attempts`` failed ones: doubling, a tenth of
    jitter so several senders do not retry in step."""
    wait = min(MAX_BACKOFF, base * 2.0 ** min(attempts, 30))
    return wait * random.uniform(0.9, 1.1)


def request_of(delivery: Delivery, channel: Channel, policy: Policy, base_url: str) -> Outgoing:
    facts = dict(delivery.facts)
    mentions = tuple(facts.pop("mention", ()))
    base = policy.public_url or base_url
    link = f"{base}/ui/runs/{delivery.run_id}" if base and facts.get("run_id") else None
    return outgoing(
        channel, facts, mentions=mentions, link=link, now=time.time(), delivery=str(delivery.id)
    )


def settle(outbox: Outbox, delivery: Delivery, answer: Verdict, policy: Policy) -> str:
    """Record what a try came to: sent, to be retried, or failed for good."""
    if answer.ok:
        outbox.sent(delivery)
        return "sent"
    now = time.time()
    deadline = delivery.created_at + policy.give_up
    tries = delivery.attempts + 1
    if answer.permanent or now >= deadline:
        why = (
            ""
            if answer.permanent
            else f" (tried {tries} times over {now - delivery.created_at:.0f}s)"
        )
        outbox.give_up(delivery, answer.error + why)
        return "failed"
    wait = (
        answer.retry_after if answer.retry_after is not None else backoff(tries - 1, policy.retry)
    )
    outbox.retry(delivery, min(now + wait, deadline), answer.error)
    return "retry"


def _answer(channel: Channel, response: httpx.Response) -> Verdict:
    headers = {key.lower(): value for key, value in response.headers.items()}
    return verdict(channel, response.status_code, headers, response.content)


def _missing(delivery: Delivery) -> Verdict:
    return Verdict(
        False, f"no channel named {delivery.channel!r} in config.toml any more", permanent=True
    )


def send_now(
    outbox: Outbox,
    notifications: Notifications,
    deliveries: list[Delivery],
    policy: Policy,
    base_url: str = "",
    *,
    terminal: bool = False,
) -> list[tuple[Delivery, str, Verdict]]:
    """Try each delivery once, here and now (``notify test``; ``terminal``: at the end of a
    command, which waits for a channel that does not answer no longer than TERMINAL_TIMEOUT:
    the daemon retries what it leaves)."""
    import httpx

    done = []
    timeout = min(policy.timeout, TERMINAL_TIMEOUT) if terminal else policy.timeout
    with httpx.Client(timeout=timeout, follow_redirects=False) as client:
        for delivery in deliveries:
            channel = notifications.channels.get(delivery.channel)
            if channel is None:
                answer = _missing(delivery)
            else:
                wanted = request_of(delivery, channel, policy, base_url)
                try:
                    response = client.post(wanted.url, content=wanted.body, headers=wanted.headers)
                    answer = _answer(channel, response)
                except httpx.HTTPError as exc:
                    answer = Verdict(False, f"{channel.shown}: {exc or type(exc).__name__}")
            done.append((delivery, settle(outbox, delivery, answer, policy), answer))
    return done


class DeliveryLoop:
    """The daemon's sender: due deliveries claimed and sent, whoever recorded them."""

    def __init__(
        self, notifier: Notifier, base_url: Callable[[], str], log: Callable[..., None]
    ) -> None:
        self.notifier = notifier
        self.base_url = base_url
        self.log = log
        self.wake = asyncio.Event()

    async def run(self) -> None:
        import httpx

        notifier = self.notifier
        timeout = notifier.policy.timeout
        async with httpx.AsyncClient(timeout=timeout, follow_redirects=False) as client:
            while True:
                for problem in notifier.problems:
                    self.log("notification_problem", problem=problem)
                notifier.problems.clear()
                try:
                    await self.round(client)
                except ToolrunError as exc:  # the store, full or damaged: try again later
                    self.log("notification_problem", problem=exc.message)
                    await asyncio.sleep(POLL)

    async def round(self, client: httpx.AsyncClient) -> None:
        """Send what is due; then wait until more is, or a run ends, or POLL passes."""
        outbox, policy = self.notifier.outbox, self.notifier.policy
        self.wake.clear()  # before looking: a run that ends from now on is seen next round
        while True:
            due = await asyncio.to_thread(outbox.claim, LEASE)
            for delivery in due:
                answer = await self.send(client, delivery)
                outcome = await asyncio.to_thread(settle, outbox, delivery, answer, policy)
                self.log(
                    "notification",
                    id=delivery.id,
                    run=delivery.run_id,
                    channel=delivery.channel,
                    outcome=outcome,
                    **({"error": answer.error} if answer.error else {}),
                )
            if not due:
                break
        soonest = await asyncio.to_thread(outbox.next_due)
        wait = POLL if soonest is None else min(POLL, max(0.0, soonest - time.time()))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.wake.wait(), wait)

    async def send(self, client: httpx.AsyncClient, delivery: Delivery) -> Verdict:
        import httpx

        channel = self.notifier.notifications.channels.get(delivery.channel)
        if channel is None:
            return _missing(delivery)
        wanted = request_of(delivery, channel, self.notifier.policy, self.base_url())
        try:
            response = await client.post(wanted.url, content=wanted.body, headers=wanted.headers)
        except httpx.HTTPError as exc:
            return Verdict(False, f"{channel.shown}: {exc or type(exc).__name__}")
        return _answer(channel, response)
