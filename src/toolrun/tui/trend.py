"""A toolchain's recent runs at a glance: their durations as a line of bars, failures in red.

The runs come from one query of at most ``RECENT`` rows on the (toolchain, created_at) index:
the runs of the selected run's toolchain up to it, so the line ends at the run the cursor is
on and a store of a million runs costs it what a store of twenty does.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from textual.content import Content
from textual.widgets import Static

from ..records import record
from ..runs.event_text import counted, format_duration

if TYPE_CHECKING:
    from ..history.store import HistoryQuery, RunRecord

RECENT = 20
BARS = "▁▂▃▄▅▆▇█"
FAILED = ("failed", "timed_out", "worker_lost", "interrupted")
# The usual run keeps the terminal's own colour, so the runs that went wrong stand out.
BAR_STYLES = {status: "bold red" for status in FAILED} | {"cancelled": "yellow"}


@record(frozen=True)
class Timed:
    """An ended run as the line shows it."""

    status: str
    seconds: float


def bar_heights(seconds: Sequence[float]) -> list[int]:
    """Each duration as one of ``BARS`` (0 to 7), in proportion to the longest."""
    longest = max(seconds, default=0.0)
    if longest <= 0:
        return [0] * len(seconds)
    return [max(0, math.ceil(value / longest * len(BARS)) - 1) for value in seconds]


def trend_content(toolchain: str, runs: Sequence[Timed]) -> Content:
    """``export-job: 20 runs up to this one ▃▅▂█ median 41.2s, 3 failed``, oldest first."""
    if not runs:
        return Content.assemble((toolchain, "bold"), ": no ended runs yet")
    durations = [run.seconds for run in runs]
    bars = Content.assemble(
        *(
            (BARS[height], BAR_STYLES.get(run.status, ""))
            for run, height in zip(runs, bar_heights(durations), strict=True)
        )
    )
    failed = sum(run.status in FAILED for run in runs)
    return Content.assemble(
        (toolchain, "bold"),
        f": {counted(len(runs), 'run')} up to this one ",
        bars,
        f" median {format_duration(statistics.median(durations))}",
        (f", {failed} failed" if failed else ", none failed", "red" if failed else ""),
    )


class Trend(Static):
    """The durations of the selected run's toolchain's latest runs, up to the selected one."""

    DEFAULT_CSS = """
    Trend { height: 1; padding: 0 1; }
    """

    def __init__(self, fetch: Callable[[HistoryQuery], Sequence[RunRecord]]) -> None:
        super().__init__(id="trend")
        self.fetch = fetch
        self.runs: list[Timed] = []
        self.shown: str | None = None  # the id of the run it ends at

    def show(self, run: RunRecord | None, *, again: bool = False) -> None:
        """End the line at ``run``; ``again`` reads its runs anew though it already ends there
        (some may have ended since)."""
        if run is not None and run.id == self.shown and not again:
            return
        self.shown = run.id if run is not None else None
        if run is None:
            self.runs = []
            self.update("")
            return
        from ..history.store import HistoryQuery

        # `until` is exclusive: the next float after the run's own time takes it in.
        query = HistoryQuery(
            toolchain=run.toolchain,
            until=math.nextafter(run.created_at, math.inf),
            limit=RECENT,
        )
        newest_first = self.fetch(query)
        self.runs = [
            Timed(past.status, past.finished_at - past.started_at)
            for past in reversed(newest_first)
            if past.started_at is not None and past.finished_at is not None
        ]
        self.update(trend_content(run.toolchain, self.runs))
