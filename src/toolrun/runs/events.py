"""What a run emits as it goes, how it is stored, and how a late reader catches up.

Every event has a per-run sequence number. The canonical log is ``events.jsonl``, one event a
line. A subscriber in the same process replays the file and then follows the live events
without a gap or a duplicate (the sequence numbers make the seam exact); a reader in another
process replays the file and keeps reading it as it grows, until the run has finished.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

from ..records import field, record

# `typing` costs milliseconds at start-up; annotations alone never need it at run time.
TYPE_CHECKING = False
if TYPE_CHECKING:
    import asyncio
    from typing import Any

# Kinds of event, in the order a run emits them.
RUN_STARTED = "run_started"
STEP_STARTED = "step_started"
OUTPUT = "output"  # data: stream, lines (lines read together share one event and timestamp)
OUTPUT_TRUNCATED = "output_truncated"
STEP_FINISHED = "step_finished"
STEP_SKIPPED = "step_skipped"
MESSAGE = "message"
RUN_PAUSED = "run_paused"  # data: now (the running steps frozen too)
RUN_RESUMED = "run_resumed"  # data: paused (seconds it was paused)
RUN_FINISHED = "run_finished"
KINDS = (
    RUN_STARTED,
    STEP_STARTED,
    OUTPUT,
    OUTPUT_TRUNCATED,
    STEP_FINISHED,
    STEP_SKIPPED,
    MESSAGE,
    RUN_PAUSED,
    RUN_RESUMED,
    RUN_FINISHED,
)

FLUSH_BYTES = 256 * 1024
BIG_BATCH = 32  # output events with more lines than this are encoded with orjson
FLUSH_SECONDS = 0.05


@record(frozen=True)
class Event:
    """One thing a run did, numbered in the run's order."""

    seq: int
    time: float
    kind: str
    step: str | None = None
    attempt: int | None = None
    data: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        return self.to_bytes().decode("utf-8")

    def to_bytes(self) -> bytes:
        record: dict[str, Any] = {"seq": self.seq, "t": round(self.time, 6), "kind": self.kind}
        if self.step is not None:
            record["step"] = self.step
        if self.attempt is not None:
            record["attempt"] = self.attempt
        record.update(self.data)
        if self.kind == OUTPUT and len(self.data.get("lines", ())) > BIG_BATCH:
            # The standard library's encoder spends most of a busy run escaping output;
            # orjson does the same in a fifteenth of the time (2,000,000 lines through
            # `run --plain`: 1.12x a pipe to cat with it, 1.41x with json alone, 2026-12-03).
            # Small events keep json: importing orjson costs 26 ms, a third of exec's
            # overhead. The two write the same bytes for an output event (events_test.py).
            import orjson

            return orjson.dumps(record)
        return json.dumps(record, ensure_ascii=False, separators=(",", ":")).encode("utf-8")

    @classmethod
    def from_json(cls, line: str | bytes) -> Event:
        record = _loads(line)
        seq, when, kind = record.pop("seq"), record.pop("t"), record.pop("kind")
        step, attempt = record.pop("step", None), record.pop("attempt", None)
        return cls(seq, when, kind, step, attempt, record)

    @property
    def lines(self) -> list[str]:
        return self.data.get("lines", []) if self.kind == OUTPUT else []


class EventLog:
    """Appends events to ``events.jsonl``, batching output so millions of lines stay cheap.

    State changes are flushed at once, so another process sees them without delay; output is
    flushed every 256 KiB or 50 ms. What was flushed survives the process being killed.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        # A write that failed (a full disk): the run's books see it and stop the run. What
        # could not be written is dropped rather than kept in memory, and so is what follows.
        self.failure: OSError | None = None
        self._buffer: list[bytes] = []
        self._buffered = 0
        self._last_flush = time.monotonic()

    def append(self, event: Event) -> None:
        line = event.to_bytes() + b"\n"
        self._buffer.append(line)
        self._buffered += len(line)
        if (
            event.kind != OUTPUT
            or self._buffered >= FLUSH_BYTES
            or time.monotonic() - self._last_flush >= FLUSH_SECONDS
        ):
            self.flush()

    def flush(self) -> None:
        if self._buffer and self._fd >= 0 and self.failure is None:
            view = memoryview(b"".join(self._buffer))
            try:
                while view:
                    written = os.write(self._fd, view)
                    view = view[written:]
            except OSError as exc:
                self.failure = exc
        self._buffer.clear()
        self._buffered = 0
        self._last_flush = time.monotonic()

    def close(self) -> None:
        self.flush()
        if self._fd >= 0:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = -1


def read_events(
    path: Path,
    *,
    after: int = 0,
    damaged: list[int] | None = None,
    torn: list[int] | None = None,
) -> Iterator[Event]:
    """Stored events with ``seq > after``; a torn last line (a killed writer) is left out, and
    the byte where it starts added to ``torn`` when given.

    A line that is not an event (the NUL bytes a power cut leaves, an edit by hand) is
    skipped, and its number added to ``damaged`` when given, so one bad line never costs the
    rest of the log.
    """
    try:
        file = path.open("rb")
    except FileNotFoundError:
        return
    with file:
        offset = 0
        for number, line in enumerate(file, 1):
            if not line.endswith(b"\n"):
                if torn is not None:
                    torn.append(offset)
                break
            offset += len(line)
            event = stored_event(line)
            if event is None:
                if damaged is not None:
                    damaged.append(number)
            elif event.seq > after:
                yield event


TAIL_BLOCK = 64 * 1024


def last_event(path: Path) -> Event | None:
    """The log's last complete event, read from its end (logs run to gigabytes)."""
    try:
        file = path.open("rb")
    except FileNotFoundError:
        return None
    with file:
        end = file.seek(0, os.SEEK_END)
        tail = b""
        while end > 0:
            start = max(0, end - TAIL_BLOCK)
            file.seek(start)
            tail = file.read(end - start) + tail
            end = start
            lines = tail.split(b"\n")
            # The first piece may be cut by the block's start, the last by a torn write.
            for line in reversed(lines[1:-1] if end > 0 else lines[:-1]):
                event = stored_event(line)
                if event is not None:
                    return event
            tail = lines[0] if end > 0 else b""
    return None


def append_final(path: Path, kind: str, **data: Any) -> Event | None:
    """Close the log of a run whose writer is gone with one more event (``run_finished``),
    numbered after the last. A torn last line is ended first, so it stays a line of its own
    (reported as damaged) rather than swallowing this one. None if the log cannot be written."""
    last = last_event(path)
    event = Event((last.seq if last else 0) + 1, time.time(), kind, data=data)
    try:
        with path.open("ab") as file:
            if file.tell() > 0:
                with path.open("rb") as reading:
                    reading.seek(-1, os.SEEK_END)
                    if reading.read(1) != b"\n":
                        file.write(b"\n")
            file.write(event.to_bytes() + b"\n")
    except OSError:
        return None
    return event


def stored_event(line: bytes) -> Event | None:
    """The event a line of events.jsonl holds, or None if it holds none."""
    try:
        event = Event.from_json(line)
    except (ValueError, KeyError, TypeError, AttributeError):
        return None
    if not isinstance(event.seq, int) or not isinstance(event.kind, str):
        return None
    return event


def _loads(line: str | bytes) -> dict[str, Any]:
    if len(line) > 4096:
        import orjson

        return orjson.loads(line)  # type: ignore[no-any-return]
    return json.loads(line)  # type: ignore[no-any-return]


class RunChannel:
    """One run's live events: stored through an EventLog and handed to subscribers."""

    def __init__(self, log: EventLog) -> None:
        self.log = log
        self.seq = 0
        self.finished = False
        self._subscribers: list[asyncio.Queue[Event | None]] = []
        self._callbacks: list[Callable[[Event], None]] = []

    def emit(
        self, kind: str, step: str | None = None, attempt: int | None = None, **data: Any
    ) -> Event:
        self.seq += 1
        event = Event(self.seq, time.time(), kind, step, attempt, data)
        self.log.append(event)
        for callback in self._callbacks:
            callback(event)
        for queue in self._subscribers:
            queue.put_nowait(event)
        if kind == RUN_FINISHED:
            self.finished = True
            self.log.flush()
            for queue in self._subscribers:
                queue.put_nowait(None)
        return event

    def on_event(self, callback: Callable[[Event], None]) -> None:
        """Call ``callback`` for every event from now on, synchronously."""
        self._callbacks.append(callback)

    async def replay_then_follow(self, *, after: int = 0) -> AsyncIterator[Event]:
        """Every event with ``seq > after``: the stored ones, then the live ones, each once."""
        async for batch in self.follow_batches(after=after):
            for event in batch:
                yield event

    async def follow_batches(
        self, *, after: int = 0, idle: float | None = None, replay_batch: int = 256
    ) -> AsyncIterator[list[Event]]:
        """As ``replay_then_follow``, but what is waiting comes as one list (so a front end
        writes it at once), and after ``idle`` quiet seconds an empty list (a keep-alive)."""
        import asyncio

        queue: asyncio.Queue[Event | None] = asyncio.Queue()
        # Flushing and subscribing with no await between them: every event emitted before
        # is in the file, every event emitted after is in the queue.
        self.log.flush()
        finished = self.finished
        if not finished:
            self._subscribers.append(queue)
        last = after
        try:
            batch: list[Event] = []
            for event in read_events(self.log.path, after=after):
                last = event.seq
                batch.append(event)
                if len(batch) >= replay_batch:
                    yield batch
                    batch = []
            if batch:
                yield batch
            if finished:
                return
            while True:
                try:
                    async with asyncio.timeout(idle):
                        item = await queue.get()
                except TimeoutError:
                    yield []
                    continue
                batch = []
                while True:
                    if item is None:
                        if batch:
                            yield batch
                        return
                    if item.seq > last:
                        last = item.seq
                        batch.append(item)
                    try:
                        item = queue.get_nowait()
                    except asyncio.QueueEmpty:
                        break
                yield batch
        finally:
            if queue in self._subscribers:
                self._subscribers.remove(queue)


class LogTail:
    """Reads the events another process appends to a run's events.jsonl: each ``read``
    returns the complete new events with a seq above those already seen, once each."""

    def __init__(self, path: Path, *, after: int = 0) -> None:
        self.path = path
        self.last = after
        self._position = 0
        self._pending = b""

    def read(self) -> tuple[list[Event], bool]:
        """The new events, and whether the file had grown at all."""
        try:
            with self.path.open("rb") as file:
                file.seek(self._position)
                chunk = file.read()
                self._position = file.tell()
        except FileNotFoundError:
            return [], False
        if not chunk:
            return [], False
        *complete, self._pending = (self._pending + chunk).split(b"\n")
        events = []
        for line in complete:
            if line:
                event = stored_event(line)
                if event is not None and event.seq > self.last:
                    self.last = event.seq
                    events.append(event)
        return events, True


def follow_file(
    path: Path, is_finished: Callable[[], bool], *, after: int = 0, poll: float = 0.1
) -> Iterator[Event]:
    """Replay a run's stored events, then keep reading as another process appends to them."""
    tail = LogTail(path, after=after)
    while True:
        finished = is_finished()  # read before the file, so no event written after is missed
        events, grew = tail.read()
        for event in events:
            yield event
            if event.kind == RUN_FINISHED:
                return
        if not grew:
            if finished:
                return
            time.sleep(poll)
