"""One run of the history: its steps, versions with sha256, params, timings, and its log."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Log, Static

from ..describe import ICONS, describe_event, format_duration
from ..events import OUTPUT, Event

if TYPE_CHECKING:
    from ..store import RunRecord, StepRecord

MAX_LOG_LINES = 200_000  # the large-log viewer (issue 4) will lift this


class RunScreen(Screen[None]):
    DEFAULT_CSS = """
    RunScreen #facts { height: auto; padding: 0 1; }
    RunScreen DataTable { height: auto; max-height: 12; }
    RunScreen Log { border-top: solid $primary; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q", "app.pop_screen", "Back", id="run_screen.back"),
    ]

    def __init__(
        self,
        run: RunRecord,
        steps: list[StepRecord],
        events: Callable[[], Iterable[Event]],
    ) -> None:
        super().__init__()
        self.run = run
        self.steps = steps
        self.events = events

    def compose(self) -> ComposeResult:
        run = self.run
        params = ", ".join(f"{k}={v!r}" for k, v in run.params.items()) or "none"
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
        yield Log(id="log", auto_scroll=False)
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
        self.run_worker(self._load_log, thread=True)

    def _load_log(self) -> None:
        prefix = len(self.steps) > 1
        lines: list[str] = []
        for event in self.events():
            if event.kind == OUTPUT:
                lead = f"{event.step} | " if prefix else ""
                lines.extend(lead + line for line in event.lines)
            else:
                note = describe_event(event)
                if note:
                    lines.append(note)
            if len(lines) >= MAX_LOG_LINES:
                lines.append(f"… more in `toolrun logs {self.run.id}`")
                break
        self.app.call_from_thread(self.query_one(Log).write_lines, lines)
