"""Every run's event log ends with ``run_finished``: what that event says of a run the store
has seen end, and the one a replay adds when the run's writer died before it could say."""

from __future__ import annotations

import time

from ..runs.events import RUN_FINISHED, Event, last_event

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path
    from typing import Any

    from .model import RunRecord

INTERRUPTED = "the toolrun process running it ended unexpectedly"


def run_finished_data(record: RunRecord) -> dict[str, Any]:
    """What a ``run_finished`` event says of a run the store has seen end."""
    return {
        "status": record.status,
        "exit_code": record.exit_code if record.exit_code is not None else 1,
        "duration": round(record.duration, 3) if record.duration is not None else None,
        "error": record.error,
    }


def with_ending(events: Iterator[Event], record: RunRecord, log: Path) -> Iterator[Event]:
    """A finished run's stored events, ending with ``run_finished`` as every replay does: one
    made from the store when the log ``log`` has none (its writer died before it could say).
    ``events`` may start after some seq: then none is added if the log ended already."""
    ended = False
    for event in events:
        yield event
        ended = ended or event.kind == RUN_FINISHED
    if ended or record.is_active:
        return
    last = last_event(log)
    if last is not None and last.kind == RUN_FINISHED:
        return
    data = {**run_finished_data(record), "recovered": True}
    seq = last.seq + 1 if last is not None else 1
    yield Event(seq, record.finished_at or time.time(), RUN_FINISHED, data=data)
