"""One run of the history: its steps, versions with sha256, params, timings, its steps on a
timeline, and its log."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static

from ..runs.event_text import ICONS, format_duration, shown_value
from .log_view import LogView
from .search_bar import SearchBar
from .timeline import Timeline

if TYPE_CHECKING:
    from ..history.store import RunRecord, StepRecord


class RunScreen(Screen[None]):
    DEFAULT_CSS = """
    RunScreen #facts { height: auto; padding: 0 1; }
    RunScreen DataTable { height: auto; max-height: 12; }
    RunScreen #timeline-box { height: auto; max-height: 8; }
    RunScreen LogView { border-top: solid $primary; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q", "app.pop_screen", "Back", id="run_screen.back"),
        Binding("slash", "search", "Search", id="run_screen.search"),
        Binding("n", "search_again", "Next match", id="run_screen.search_next", show=False),
    ]

    def __init__(
        self,
        run: RunRecord,
        steps: list[StepRecord],
        log_path: Path,
    ) -> None:
        super().__init__()
        self.run = run
        self.steps = steps
        self.log_path = log_path

    def compose(self) -> ComposeResult:
        run = self.run
        params = ", ".join(f"{k}={shown_value(v)}" for k, v in run.params.items()) or "none"
        started = run.started_at or run.created_at
        yield Static(
            f"[b]run {run.id}[/b]  {run.toolchain}  [b]{run.status}[/b]"
            + (f"  ({run.error})" if run.error else "")
            + f"\nstarted {time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(started))}"
            f"  duration {format_duration(run.duration)}  origin {run.origin}"
            + (f" by {run.requester}" if run.requester else "")
            + f"\nparams {params}",
            id="facts",
        )
        yield DataTable(cursor_type="row", id="steps")
        with VerticalScroll(id="timeline-box"):
            yield Timeline(run, self.steps)
        yield LogView(self.log_path, prefix=len(self.steps) > 1, id="log")
        yield SearchBar("log")
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one("#steps", DataTable)
        table.add_columns("", "step", "tool", "version", "sha256", "tries", "time", "exit")
        for step in self.steps:
            table.add_row(
                ICONS.get(step.status, "?"),
                step.step_id,
                step.tool,
                step.version or "-",
                (step.sha256 or "-")[:16],
                str(step.attempts),
                format_duration(step.duration) if step.started_at else "-",
                "-" if step.exit_code is None else str(step.exit_code),
            )
        self.query_one(LogView).focus()

    def action_search(self) -> None:
        self.query_one(SearchBar).open()

    def action_search_again(self) -> None:
        self.query_one(SearchBar).search_again()
