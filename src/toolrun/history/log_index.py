"""Reading any line of a run's log without reading the log into memory.

A run's log is its ``events.jsonl``; one event shows as one line or, for output, as many.
The index keeps a checkpoint every ``CHECKPOINT`` display lines (the byte offset of the event
holding that line and how far into the event it is), so memory stays flat however big the log
is, and a line is found by parsing at most a checkpoint's worth of events. ``scan`` indexes a
slice at a time, so a viewer can show the first screen at once and index the rest as it goes.
"""

from __future__ import annotations

import os
from array import array
from pathlib import Path

from ..runs.event_text import display_lines
from ..runs.events import Event

CHECKPOINT = 1024
SCAN_BYTES = 4 * 1024 * 1024


class LogIndex:
    """Display lines of one run's log; with ``step``, only that step's."""

    def __init__(self, path: Path, *, prefix: bool, step: str | None = None) -> None:
        self.path = path
        self.prefix = prefix
        self.step = step
        self.line_count = 0
        self._offsets = array("q")  # byte offset of the event holding checkpoint k's line
        self._skips = array("l")  # display lines of that event before checkpoint k's line
        self._scanned = 0  # bytes indexed so far (always at an event boundary)

    @property
    def scanned_bytes(self) -> int:
        return self._scanned

    def scan(self, budget: int = SCAN_BYTES) -> bool:
        """Index up to ``budget`` more bytes; True once everything written so far is indexed."""
        try:
            with self.path.open("rb") as file:
                file.seek(self._scanned)
                block = file.read(budget)
        except FileNotFoundError:
            return True
        end = block.rfind(b"\n")
        if end < 0:
            if len(block) < budget:
                return True  # nothing complete yet (or a torn last line)
            return self.scan(budget * 2)  # one event larger than the budget
        position = 0
        while position <= end:
            newline = block.index(b"\n", position)
            offset = self._scanned + position
            count = len(self._shown(Event.from_json(block[position:newline])))
            # Every checkpoint that falls inside this event points at it.
            first = self.line_count
            next_checkpoint = len(self._offsets) * CHECKPOINT
            while next_checkpoint < first + count:
                self._offsets.append(offset)
                self._skips.append(next_checkpoint - first)
                next_checkpoint += CHECKPOINT
            self.line_count += count
            position = newline + 1
        self._scanned += end + 1
        return len(block) < budget

    def scan_all(self) -> None:
        while not self.scan():
            pass

    def lines(self, start: int, count: int) -> list[str]:
        """Display lines ``start`` to ``start + count`` (fewer at the end of what is indexed)."""
        start = max(start, 0)
        stop = min(start + count, self.line_count)
        if start >= stop:
            return []
        checkpoint = start // CHECKPOINT
        skip = self._skips[checkpoint] + (start - checkpoint * CHECKPOINT)
        found: list[str] = []
        with self.path.open("rb") as file:
            file.seek(self._offsets[checkpoint])
            for raw in file:
                if not raw.endswith(b"\n"):
                    break
                shown = self._shown(Event.from_json(raw))
                if skip >= len(shown):
                    skip -= len(shown)
                    continue
                found.extend(shown[skip:])
                skip = 0
                if len(found) >= stop - start:
                    break
        return found[: stop - start]

    def _shown(self, event: Event) -> list[str]:
        if self.step is not None and event.step != self.step:
            return []
        return display_lines(event, prefix=self.prefix)

    def find(self, text: str, start: int, *, chunk: int = 2000) -> int | None:
        """The first line at or after ``start`` containing ``text`` (case-insensitive)."""
        wanted = text.lower()
        for first in range(max(start, 0), self.line_count, chunk):
            for number, line in enumerate(self.lines(first, chunk), start=first):
                if wanted in line.lower():
                    return number
        return None

    def memory_bytes(self) -> int:
        """What the index itself holds: flat in the log's size (checkpoints only)."""
        return self._offsets.itemsize * len(self._offsets) + self._skips.itemsize * len(self._skips)


def file_size(path: Path) -> int:
    try:
        return os.path.getsize(path)
    except OSError:
        return 0
