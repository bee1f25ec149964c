"""A run's events for an HTTP client, and the three shapes they are sent in.

A run of this daemon is followed through its RunChannel (stored events, then live ones, each
once). A run of another process on this machine (``toolrun run`` in a terminal) is followed by
reading its events.jsonl as it grows. Either way a client that reconnects with the seq it saw
last gets exactly the events after it.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import TypeVar

from ..describe import display_lines
from ..events import OUTPUT, RUN_FINISHED, Event, LogTail
from ..store import ACTIVE, Store
from .runs import RunManager

T = TypeVar("T")
POLL_SECONDS = 0.2
KEEPALIVE_SECONDS = 15.0


async def run_event_batches(
    manager: RunManager, store: Store, run_id: str, *, after: int = 0
) -> AsyncIterator[list[Event]]:
    """Every event of ``run_id`` with a seq above ``after`` until the run has ended, in lists
    of what was ready at once; an empty list is a keep-alive after a quiet spell."""
    handle = manager.live.get(run_id)
    if handle is not None:
        async for batch in handle.channel.follow_batches(after=after, idle=KEEPALIVE_SECONDS):
            yield batch
        return
    empty: list[Event] = []
    async for batch in with_keepalive(_as_lists(_follow_file(store, run_id, after)), quiet=empty):
        yield batch


async def _as_lists(events: AsyncIterator[Event]) -> AsyncIterator[list[Event]]:
    async for event in events:
        yield [event]


async def sse_stream(
    manager: RunManager, store: Store, run_id: str, *, after: int = 0
) -> AsyncIterator[bytes]:
    """A run's events as Server-Sent Events: one write per batch, a comment when quiet."""
    async for batch in run_event_batches(manager, store, run_id, after=after):
        yield b"".join(sse_message(event) for event in batch) if batch else b": keepalive\n\n"


async def _follow_file(store: Store, run_id: str, after: int) -> AsyncIterator[Event]:
    """A run of another process on this machine, read as its events.jsonl grows."""
    tail = LogTail(store.run_dir(run_id) / "events.jsonl", after=after)
    while True:
        # The state is read before the file, so no event written after it is missed.
        record = await asyncio.to_thread(store.get_run, run_id)
        ended = record is None or record.status not in ACTIVE
        events, grew = await asyncio.to_thread(tail.read)
        for event in events:
            yield event
            if event.kind == RUN_FINISHED:
                return
        if ended and not grew:
            return
        await asyncio.sleep(POLL_SECONDS)


# -- the shapes ------------------------------------------------------------------------------


def sse_message(event: Event) -> bytes:
    """One Server-Sent Event: the event's seq as its id, so a client resumes with Last-Event-ID.

    A live event is one object shared by every client following the run: it is encoded once
    and the bytes kept on it, not once per client (500 clients made that most of the work).
    """
    cached: bytes | None = event.__dict__.get("_sse")
    if cached is None:
        head = f"id: {event.seq}\nevent: {event.kind}\ndata: ".encode()
        cached = head + event.to_bytes() + b"\n\n"
        object.__setattr__(event, "_sse", cached)  # not a field: equality and hash unchanged
    return cached


def sse_data(kind: str, data: object) -> bytes:
    """An event without an id (the daemon-wide stream, which is not resumable)."""
    return f"event: {kind}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n".encode()


def text_lines(event: Event, *, prefix: bool) -> bytes:
    """The event as a plain log reads it; a single tool's output passes as it is."""
    if not prefix:
        lines = event.lines if event.kind == OUTPUT else []
    else:
        lines = display_lines(event, prefix=True)
    return "".join(line + "\n" for line in lines).encode("utf-8")


async def with_keepalive(
    messages: AsyncIterator[T], every: float = KEEPALIVE_SECONDS, *, quiet: T | None = None
) -> AsyncIterator[T]:
    """Pass messages on, with ``quiet`` (an SSE comment unless told) whenever none came for
    ``every`` seconds, so proxies and clients do not take a quiet run for a dead connection."""
    iterator = messages.__aiter__()
    next_message: asyncio.Task[T] | None = None
    try:
        while True:
            if next_message is None:
                next_message = asyncio.ensure_future(iterator.__anext__())
            done, _ = await asyncio.wait({next_message}, timeout=every)
            if not done:
                yield quiet if quiet is not None else b": keepalive\n\n"  # type: ignore[misc]
                continue
            try:
                message = next_message.result()
            except StopAsyncIteration:
                return
            next_message = None
            yield message
    finally:
        if next_message is not None and not next_message.done():
            next_message.cancel()
