"""Plain output of a run: each line prefixed with its step in a stable colour, then a summary.

Written for speed as much as looks: a step printing millions of lines goes through here.
"""

from __future__ import annotations

import os
import sys
import zlib

from ..history.store import RunRecord, StepRecord
from ..runs import events as ev
from ..runs.event_text import describe_event, format_duration
from ..runs.events import Event

# `typing` costs milliseconds at start-up; annotations alone never need it at run time.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import IO

_COLOURS = ("36", "35", "33", "32", "34", "96", "95", "93", "92", "94")
_STATUS_COLOURS = {
    "succeeded": "32",
    "failed": "31",
    "timed_out": "31",
    "worker_lost": "31",
    "cancelled": "33",
    "interrupted": "33",
    "skipped": "90",
    "running": "36",
    "paused": "33",
    "queued": "36",
    "pending": "90",
}


def use_colour(stream: IO[str]) -> bool:
    return stream.isatty() and "NO_COLOR" not in os.environ and os.environ.get("TERM") != "dumb"


def paint(text: str, code: str, colour: bool) -> str:
    return f"\x1b[{code}m{text}\x1b[0m" if colour else text


def step_colour(step_id: str) -> str:
    """The same step gets the same colour in every run."""
    return _COLOURS[zlib.crc32(step_id.encode()) % len(_COLOURS)]


class PlainPrinter:
    def __init__(self, *, prefix: bool, out: IO[str] | None = None) -> None:
        self.out = out or sys.stdout
        self.colour = use_colour(self.out)
        self.prefix = prefix
        self._prefixes: dict[tuple[str, str], str] = {}
        self._width = 0

    def set_steps(self, step_ids: list[str]) -> None:
        self._width = max((len(s) for s in step_ids), default=0)

    def _prefix(self, step: str, stream: str) -> str:
        key = (step, stream)
        prefix = self._prefixes.get(key)
        if prefix is None:
            label = step.ljust(self._width)
            marker = "!" if stream == "stderr" else "|"
            prefix = paint(f"{label} {marker}", step_colour(step), self.colour) + " "
            self._prefixes[key] = prefix
        return prefix

    def __call__(self, event: Event) -> None:
        kind = event.kind
        if kind == ev.OUTPUT:
            lines = event.data["lines"]
            if self.prefix:
                prefix = self._prefix(event.step or "", event.data.get("stream", "stdout"))
                self.out.write("".join(f"{prefix}{line}\n" for line in lines))
            else:
                self.out.write("\n".join(lines) + "\n")
            return
        text = describe_event(event)
        if text:
            self.out.write(paint(text, "2", self.colour) + "\n")
            self.out.flush()

    def flush(self) -> None:
        self.out.flush()


def summary(run: RunRecord, steps: list[StepRecord], out: IO[str] | None = None) -> None:
    """The table printed when a run ends: steps, status, attempts, durations, exit codes."""
    out = out or sys.stdout
    colour = use_colour(out)
    rows = []
    for step in steps:
        status = step.status + (" (allowed)" if step.allowed_failure else "")
        rows.append(
            [
                step.step_id,
                f"{step.tool} {step.version or ''}".strip(),
                status,
                str(step.attempts),
                format_duration(step.duration) if step.started_at else "-",
                "-" if step.exit_code is None else str(step.exit_code),
            ]
        )
    headers = ["step", "tool", "status", "tries", "time", "exit"]
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    out.write("\n" + "  ".join(h.upper().ljust(w) for h, w in zip(headers, widths, strict=True)))
    out.write("\n")
    for row, step in zip(rows, steps, strict=True):
        cells = [cell.ljust(w) for cell, w in zip(row, widths, strict=True)]
        cells[2] = paint(cells[2], _STATUS_COLOURS.get(step.status, "0"), colour)
        out.write("  ".join(cells).rstrip() + "\n")
    status = paint(run.status, _STATUS_COLOURS.get(run.status, "0"), colour)
    out.write(f"\nrun {run.id} {status} in {format_duration(run.duration)}\n")
    out.flush()
