"""A run's log for a page: its last lines, read from the end of ``events.jsonl``, so a run
with a gigabyte of output opens as fast as one with ten lines; more is loaded on demand
(``?lines=``), and the whole log is a download (``/api/v1/runs/{id}/log``).
"""

from __future__ import annotations

import os
from pathlib import Path

from ..records import record
from ..runs import events as ev
from ..runs.event_text import describe_event
from ..runs.events import Event, stored_event

WINDOW = 1 << 20  # bytes read from the end first; doubled until there are lines enough
MAX_WINDOW = 64 << 20
MAX_LINE = 10_000  # characters of a line shown; the download has it whole


@record(frozen=True)
class Line:
    step: str | None
    stream: str  # stdout, stderr, or "event" for a state change
    text: str
    cut: bool = False  # longer than MAX_LINE: shown shortened


@record(frozen=True)
class Tail:
    lines: list[Line]
    last_seq: int  # the last event read: a live page follows on from it
    more: bool  # earlier lines exist than those shown


def tail(path: Path, count: int, *, step: str | None = None) -> Tail:
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return Tail([], 0, False)
    window = WINDOW
    while True:
        start = max(0, size - window)
        events = _events_from(path, start, size)
        lines = [line for event in events for line in _shown(event, step)]
        last_seq = events[-1].seq if events else 0
        if len(lines) > count or start == 0 or window >= MAX_WINDOW:
            return Tail(lines[-count:], last_seq, len(lines) > count or start > 0)
        window *= 4


def _events_from(path: Path, start: int, end: int) -> list[Event]:
    with path.open("rb") as file:
        file.seek(start)
        data = file.read(end - start)
    if start > 0:
        data = data[data.find(b"\n") + 1 :]  # the first line is cut: from the next
    found = []
    for raw in data.split(b"\n"):
        event = stored_event(raw + b"\n") if raw else None
        if event is not None:
            found.append(event)
    return found


def _shown(event: Event, step: str | None) -> list[Line]:
    if step is not None and event.step != step:
        return []
    if event.kind == ev.OUTPUT:
        stream = str(event.data.get("stream", "stdout"))
        return [_line(event.step, stream, text) for text in event.lines]
    text = describe_event(event)
    return [_line(event.step, "event", text)] if text else []


def _line(step: str | None, stream: str, text: str) -> Line:
    if len(text) > MAX_LINE:
        return Line(step, stream, text[:MAX_LINE], cut=True)
    return Line(step, stream, text)


def file_size(path: Path) -> int:
    try:
        return os.stat(path).st_size
    except OSError:
        return 0
