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
from .graphs import Span

WINDOW = 1 << 20  # bytes read from the end first; doubled until there are lines enough
MAX_WINDOW = 64 << 20
MAX_LINE = 2_000  # characters of a line shown; the download has it whole
MAX_SHOWN = 1 << 20  # characters of log on a page, whatever the number of lines


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
            shown = _within(lines[-count:], MAX_SHOWN)
            return Tail(shown, last_seq, len(shown) < len(lines) or start > 0)
        window *= 4


def _within(lines: list[Line], budget: int) -> list[Line]:
    """The last lines that fit in ``budget`` characters (a log of huge lines stays a page)."""
    kept: list[Line] = []
    for line in reversed(lines):
        budget -= len(line.text)
        if budget < 0:
            break
        kept.append(line)
    return kept[::-1]


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


MAX_TIMELINE_LOG = 64 << 20  # bigger logs: the timeline has each step's last attempt only


def attempt_spans(path: Path) -> list[Span] | None:
    """Every attempt's start and end from the run's events, or None when the log is too big
    to read for a picture (the store's rows then give the last attempt of each step)."""
    if file_size(path) > MAX_TIMELINE_LOG:
        return None
    open_spans: dict[tuple[str, int], float] = {}
    spans: list[Span] = []
    try:
        file = path.open("rb")
    except FileNotFoundError:
        return []
    with file:
        for raw in file:
            if b'"kind": "output"' in raw[:80] or b'"kind":"output"' in raw[:80]:
                continue  # most of a big log, and nothing the timeline needs
            event = stored_event(raw)
            if event is None or event.step is None:
                continue
            key = (event.step, event.attempt or 1)
            if event.kind == ev.STEP_STARTED:
                open_spans[key] = event.time
            elif event.kind == ev.STEP_FINISHED and key in open_spans:
                status = str(event.data.get("status", "failed"))
                spans.append(Span(key[0], key[1], open_spans.pop(key), event.time, status))
    spans += [
        Span(step, attempt, at, None, "running") for (step, attempt), at in open_spans.items()
    ]
    return spans


def file_size(path: Path) -> int:
    try:
        return os.stat(path).st_size
    except OSError:
        return 0
