"""A run's events for an HTTP client, and the three shapes they are sent in.

A run of this daemon is followed through its RunChannel (stored events, then live ones, each
once). A run of another process on this machine (``toolrun run`` in a terminal) is followed by
reading its events.jsonl as it grows. Either way a client that reconnects with the seq it saw
last gets exactly the events after it.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from pathlib import PurePosixPath, PureWindowsPath
from typing import TypeVar

from ..history.endings import with_ending
from ..history.store import ACTIVE, RunRecord, StepRecord, Store
from ..runs.event_text import EndingNote, display_lines
from ..runs.events import OUTPUT, RUN_FINISHED, STEP_STARTED, Event, LogTail
from ..services import mark_interrupted
from .runs import RunManager

T = TypeVar("T")
POLL_SECONDS = 0.2
OWNER_CHECK_SECONDS = 1.0  # how often a followed run's runner is looked for
STATUS_HEADER = "X-Toolrun-Status"
EXIT_CODE_HEADER = "X-Toolrun-Exit-Code"
KEEPALIVE_SECONDS = 15.0
KEEPALIVE = b": keepalive\n\n"  # an SSE comment: proxies and clients see a live connection


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
    manager: RunManager, store: Store, run_id: str, *, after: int = 0, private: bool = True
) -> AsyncIterator[bytes]:
    """A run's events as Server-Sent Events: one write per batch, a comment when quiet.
    Without ``private`` (a caller without the admin scope), this machine's paths are left
    out (see ``public_event``)."""
    async for batch in run_event_batches(manager, store, run_id, after=after):
        if not batch:
            yield b": keepalive\n\n"
            continue
        yield b"".join(sse_message(event, private=private) for event in batch)


async def _follow_file(store: Store, run_id: str, after: int) -> AsyncIterator[Event]:
    """A run of another process on this machine, read as its events.jsonl grows. It ends
    with ``run_finished``, made from the store when its writer died without one."""
    log = store.run_dir(run_id) / "events.jsonl"
    tail = LogTail(log, after=after)
    checked = time.monotonic()
    while True:
        if time.monotonic() - checked >= OWNER_CHECK_SECONDS:
            # Its runner may die while it is followed (a killed terminal): nothing else would
            # mark the run ended, and the stream would wait for ever.
            checked = time.monotonic()
            await asyncio.to_thread(mark_interrupted, store)
        # The state is read before the file, so no event written after it is missed.
        record = await asyncio.to_thread(store.get_run, run_id)
        ended = record is None or record.status not in ACTIVE
        events, grew = await asyncio.to_thread(tail.read)
        for event in events:
            yield event
            if event.kind == RUN_FINISHED:
                return
        if ended and not grew:
            if record is not None:
                for event in with_ending(iter(()), record, log):
                    yield event
            return
        await asyncio.sleep(POLL_SECONDS)


class PlainStream:
    """A run's output as the seed's plain stream: the tool's lines (each step's prefixed in
    a run of several), then, when toolrun itself knows something went wrong, one last line
    ``toolrun: ...``. What it learnt of the run's end is there for the trailers."""

    def __init__(self, *, steps: int) -> None:
        self.prefix = steps > 1
        self.single = steps == 1
        self.note = EndingNote(steps=self.prefix)

    def chunk(self, batch: list[Event]) -> bytes:
        out = [text_lines(event, prefix=self.prefix) for event in batch]
        for event in batch:
            last = self.note.see(event)
            if last is not None:
                out.append(last.encode("utf-8") + b"\n")
        return b"".join(out)

    def status_headers(self) -> dict[str, str]:
        """``X-Toolrun-Status`` and ``X-Toolrun-Exit-Code``, once the run has ended."""
        note = self.note
        code = exit_code(note.status, note.exit_code, note.tool_exit_code, single=self.single)
        return _status_headers(note.status, code)


def status_headers(record: RunRecord, steps: list[StepRecord]) -> dict[str, str]:
    """The same headers, for a run the store has seen end."""
    tool_code = steps[0].exit_code if len(steps) == 1 else None
    code = exit_code(record.status, record.exit_code, tool_code, single=len(steps) == 1)
    return _status_headers(record.status, code)


def exit_code(
    status: str | None, run_code: int | None, tool_code: int | None, *, single: bool
) -> int | None:
    """As ``toolrun exec`` exits: the tool's own code for one tool that ran to its end, 127
    when it could not start, else the run's (124 timed out, 130 cancelled)."""
    if single and status in ("succeeded", "failed"):
        if tool_code is None:
            return 127
        return tool_code if tool_code >= 0 else 128 - tool_code
    return run_code


def _status_headers(status: str | None, code: int | None) -> dict[str, str]:
    headers = {STATUS_HEADER: status or "unknown"}
    if code is not None:
        headers[EXIT_CODE_HEADER] = str(code)
    return headers


# -- the shapes ------------------------------------------------------------------------------


def sse_message(event: Event, *, private: bool = True) -> bytes:
    """One Server-Sent Event: the event's seq as its id, so a client resumes with Last-Event-ID.

    A live event is one object shared by every client following the run: it is encoded once
    (in each of its two forms) and the bytes kept on it, not once per client (500 clients
    made that most of the work).
    """
    key = "_sse" if private else "_sse_public"
    cached: bytes | None = event.__dict__.get(key)
    if cached is None:
        shown = event if private else public_event(event)
        head = f"id: {event.seq}\nevent: {event.kind}\ndata: ".encode()
        cached = head + shown.to_bytes() + b"\n\n"
        object.__setattr__(event, key, cached)  # not a field: equality and hash unchanged
    return cached


def public_event(event: Event) -> Event:
    """The event as a caller without the admin scope sees it: the command line's absolute
    paths (this machine's folders: the tools', Python's) shown by their file names."""
    argv = event.data.get("argv")
    if event.kind != STEP_STARTED or not isinstance(argv, list):
        return event
    shown = [_file_name(item) if isinstance(item, str) else item for item in argv]
    return Event(
        event.seq, event.time, event.kind, event.step, event.attempt, {**event.data, "argv": shown}
    )


def _file_name(item: str) -> str:
    if PurePosixPath(item).is_absolute() or PureWindowsPath(item).is_absolute():
        return PureWindowsPath(item).name if "\\" in item else PurePosixPath(item).name
    return item


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
                yield quiet if quiet is not None else KEEPALIVE  # type: ignore[misc]
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
