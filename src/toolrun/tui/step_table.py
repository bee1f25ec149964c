"""The run's steps: status icon, tool version, attempts and duration, updated live.

When steps declare ``needs``, an "after" column names what each one waits for: the graph read
as a list, which stays legible at any width where a drawn graph would not.
"""

from __future__ import annotations

import time
from typing import ClassVar

from textual.binding import Binding, BindingType
from textual.widgets import DataTable

from ..records import record
from ..runs.event_text import ICONS, format_duration

COLUMNS = (("icon", ""), ("step", "step"), ("tool", "tool"), ("tries", "tries"), ("time", "time"))


@record
class StepView:
    """What the table shows of one step; the app updates it from events."""

    step_id: str
    status: str = "pending"
    tool: str = ""
    attempts: int = 0
    started: float | None = None
    finished: float | None = None

    def duration(self, now: float) -> str:
        if self.started is None:
            return "-"
        return format_duration((self.finished or now) - self.started)


class StepTable(DataTable[str]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("j", "cursor_down", "Down", show=False),
        Binding("k", "cursor_up", "Up", show=False),
    ]

    DEFAULT_CSS = """
    StepTable { height: auto; max-height: 12; }
    """

    def __init__(
        self, step_ids: list[str], needs: dict[str, tuple[str, ...]] | None = None
    ) -> None:
        super().__init__(cursor_type="row", zebra_stripes=True)
        self.steps = {step_id: StepView(step_id) for step_id in step_ids}
        self.needs = {step: after for step, after in (needs or {}).items() if after}
        self.columns_shown = (*COLUMNS, ("after", "after")) if self.needs else COLUMNS

    def on_mount(self) -> None:
        for key, label in self.columns_shown:
            self.add_column(label, key=key)
        for view in self.steps.values():
            self.add_row(*self._cells(view, time.time()), key=view.step_id)

    def refresh_steps(self) -> None:
        now = time.time()
        for view in self.steps.values():
            for (key, _label), value in zip(
                self.columns_shown, self._cells(view, now), strict=True
            ):
                self.update_cell(view.step_id, key, value, update_width=True)

    def _cells(self, view: StepView, now: float) -> tuple[str, ...]:
        attempts = str(view.attempts) if view.attempts else "-"
        cells = (ICONS.get(view.status, "?"), view.step_id, view.tool, attempts, view.duration(now))
        if self.needs:
            return (*cells, ", ".join(self.needs.get(view.step_id, ())))
        return cells
