"""The table of runs: a page at a time from the store, never every row."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, ClassVar

from textual.binding import Binding, BindingType
from textual.widgets import DataTable

from ..runs.event_text import format_duration

if TYPE_CHECKING:
    from ..history.store import HistoryQuery, RunRecord

PAGE = 100
COLUMNS = (
    ("id", "id"),
    ("toolchain", "toolchain"),
    ("status", "status"),
    ("started", "started"),
    ("duration", "duration"),
    ("requester", "requester"),
    ("origin", "origin"),
)
STATUS_STYLES = {
    "succeeded": "green",
    "failed": "red",
    "timed_out": "red",
    "worker_lost": "red",
    "cancelled": "yellow",
    "interrupted": "yellow",
    "running": "cyan",
    "queued": "cyan",
    "paused": "yellow",
}


def run_cells(run: RunRecord) -> tuple[str, ...]:
    started = run.started_at or run.created_at
    style = STATUS_STYLES.get(run.status, "")
    return (
        run.id,
        run.toolchain,
        f"[{style}]{run.status}[/]" if style else run.status,
        time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(started)),
        format_duration(run.duration),
        run.requester,
        run.origin,
    )


class HistoryTable(DataTable[str]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("j", "cursor_down", "Down", show=False),
        Binding("k", "cursor_up", "Up", show=False),
    ]

    """Rows for the runs a query selects, newest first, loaded a page at a time."""

    def __init__(self, fetch: Callable[[HistoryQuery], Sequence[RunRecord]]) -> None:
        super().__init__(cursor_type="row", zebra_stripes=True)
        self.fetch = fetch
        self.query_: HistoryQuery | None = None
        self.runs: list[RunRecord] = []
        self.exhausted = False

    def on_mount(self) -> None:
        for key, label in COLUMNS:
            self.add_column(label, key=key)

    def show(self, query: HistoryQuery) -> None:
        """Replace the rows with the first page of ``query``."""
        from ..records import replace

        self.query_ = replace(query, limit=PAGE, offset=0)
        self.runs = []
        self.exhausted = False
        self.clear()
        self.load_more()

    def load_more(self) -> None:
        if self.query_ is None or self.exhausted:
            return
        from ..records import replace

        page = list(self.fetch(replace(self.query_, offset=len(self.runs))))
        self.exhausted = len(page) < PAGE
        for run in page:
            self.add_row(*run_cells(run), key=run.id)
        self.runs.extend(page)

    def refresh_active(self) -> bool:
        """Re-read the runs still going on this page, so they update live; whether any was."""
        if self.query_ is None or not any(run.is_active for run in self.runs):
            return False
        from ..records import replace

        fresh = {
            run.id: run for run in self.fetch(replace(self.query_, offset=0, limit=len(self.runs)))
        }
        for index, run in enumerate(self.runs):
            if run.is_active and run.id in fresh:
                self.runs[index] = fresh[run.id]
                for (key, _label), value in zip(COLUMNS, run_cells(fresh[run.id]), strict=True):
                    self.update_cell(run.id, key, value)
        return True

    @property
    def selected(self) -> RunRecord | None:
        if not self.runs or self.cursor_row >= len(self.runs):
            return None
        return self.runs[self.cursor_row]
