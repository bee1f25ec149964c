from __future__ import annotations

import time
from pathlib import Path

from toolrun.history.log_index import CHECKPOINT, LogIndex
from toolrun.runs import events as ev
from toolrun.runs.events import Event, EventLog


def write_log(path: Path, batches: int, per_batch: int) -> list[str]:
    log = EventLog(path)
    expected: list[str] = []
    seq = 0
    for batch in range(batches):
        seq += 1
        step = "a" if batch % 2 else "b"
        lines = [f"batch {batch} line {i}" for i in range(per_batch)]
        log.append(
            Event(seq, time.time(), ev.OUTPUT, step, 1, {"stream": "stdout", "lines": lines})
        )
        expected.extend(f"{step} | {line}" for line in lines)
    seq += 1
    log.append(
        Event(seq, time.time(), ev.STEP_SKIPPED, "c", None, {"status": "skipped", "reason": "x"})
    )
    expected.append("○ c: skipped (x)")
    log.close()
    return expected


def test_any_line_is_found_and_the_index_stays_small(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    expected = write_log(path, batches=300, per_batch=777)
    index = LogIndex(path, prefix=True)
    index.scan_all()
    assert index.line_count == len(expected)
    for start in (0, 5, CHECKPOINT - 1, CHECKPOINT, 123_456, len(expected) - 3):
        assert index.lines(start, 7) == expected[start : start + 7]
    assert index.lines(len(expected), 5) == []
    assert index.memory_bytes() < 16 * (len(expected) // CHECKPOINT + 2)


def test_scanning_in_slices_follows_a_growing_file(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    expected = write_log(path, batches=50, per_batch=100)
    index = LogIndex(path, prefix=False)
    slices = 0
    while not index.scan(budget=10_000):
        slices += 1
    assert slices > 5
    assert index.line_count == len(expected)
    with path.open("ab") as file:
        file.write(b'{"seq": 99, "t": 0, "kind": "output", "step": "a", "lines": ["torn')
    assert index.scan() is True and index.line_count == len(expected)
    assert index.lines(len(expected) - 1, 1) == ["○ c: skipped (x)"]
