"""The run's steps: status icon, tool version, attempts and duration, updated live.

When steps declare ``needs``, an "after" column names what each one waits for: the graph read
as a list, which stays legible at any width where a drawn graph would not.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import ClassVar

from textual.binding import Binding, BindingType
from textual.widgets import DataTable

from ..records import record
from ..runs.event_text import ICONS, format_duration

COLUMNS = (("icon", ""), ("step", "step"), ("tool", "tool"), ("tries", "tries"), ("time", "time"))
# Between a failed attempt and the next one; the engine has no step state for it.
RETRYING = "retrying"
VIEW_ICONS = {**ICONS, RETRYING: "↻"}
FROZEN_ICON = "⏸"
DONE = frozenset(("succeeded", "failed", "skipped", "cancelled", "timed_out", "worker_lost"))


def ticking_duration(seconds: float) -> str:
    """A clock that advances once a second: whole seconds, where a finished time has tenths.

    Rounded, not cut: one timer ticks for steps that started at any fraction of a second,
    so what it shows is at most half a second off.
    """
    whole = int(seconds + 0.5)
    return f"{whole}s" if whole < 60 else format_duration(whole)


@record
class StepView:
    """What the table shows of one step; the app updates it from events."""

    step_id: str
    status: str = "pending"
    tool: str = ""
    attempts: int = 0
    started: float | None = None
    finished: float | None = None
    frozen_since: float | None = None  # its process is frozen (pause --now) since then
    frozen: float = 0.0  # seconds it spent frozen before, which its clock does not count

    @property
    def done(self) -> bool:
        return self.status in DONE

    @property
    def ticking(self) -> bool:
        """Its time goes on: started, not ended, not frozen."""
        return self.started is not None and not self.done and self.frozen_since is None

    def freeze(self, when: float) -> None:
        if self.frozen_since is None and self.status == "running":
            self.frozen_since = when

    def thaw(self, when: float) -> None:
        if self.frozen_since is not None:
            self.frozen += max(0.0, when - self.frozen_since)
            self.frozen_since = None

    def elapsed(self, now: float) -> float | None:
        """Seconds it has run, as its timeout counts them: the time frozen left out."""
        if self.started is None:
            return None
        end = self.finished or self.frozen_since or now
        return max(0.0, end - self.started - self.frozen)

    def duration(self, now: float) -> str:
        seconds = self.elapsed(now)
        if seconds is None:
            return "-"
        return format_duration(seconds) if self.finished else ticking_duration(seconds)

    @property
    def icon(self) -> str:
        return FROZEN_ICON if self.frozen_since is not None else VIEW_ICONS.get(self.status, "?")


class StepTable(DataTable[str]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("j", "cursor_down", "Down", show=False),
        Binding("k", "cursor_up", "Up", show=False),
    ]

    DEFAULT_CSS = """
    StepTable { height: auto; max-height: 12; }
    """

    def __init__(
        self,
        step_ids: list[str],
        needs: dict[str, tuple[str, ...]] | None = None,
        *,
        kept: Iterable[str] = (),
    ) -> None:
        super().__init__(cursor_type="row", zebra_stripes=True)
        self.steps = {step_id: StepView(step_id) for step_id in step_ids}
        for step_id in kept:  # a rerun from the failed step keeps these; they never start
            if step_id in self.steps:
                self.steps[step_id] = StepView(step_id, status="succeeded", tool="kept")
        self.needs = {step: after for step, after in (needs or {}).items() if after}
        self.columns_shown = (*COLUMNS, ("after", "after")) if self.needs else COLUMNS

    def on_mount(self) -> None:
        for key, label in self.columns_shown:
            self.add_column(label, key=key)
        for view in self.steps.values():
            self.add_row(*self._cells(view, time.time()), key=view.step_id)

    @property
    def done_count(self) -> int:
        return sum(view.done for view in self.steps.values())

    @property
    def ticking(self) -> bool:
        return any(view.ticking for view in self.steps.values())

    def refresh_steps(self, step_ids: Iterable[str] | None = None) -> None:
        """Show the steps' views again: those named, or every one."""
        now = time.time()
        for step_id in self.steps if step_ids is None else step_ids:
            view = self.steps[step_id]
            for (key, _label), value in zip(
                self.columns_shown, self._cells(view, now), strict=True
            ):
                self.update_cell(step_id, key, value, update_width=True)

    def tick(self) -> None:
        """Advance the time of the steps whose clocks run; the rest stay as they are."""
        now = time.time()
        for view in self.steps.values():
            if view.ticking:
                self.update_cell(view.step_id, "time", view.duration(now), update_width=True)

    def _cells(self, view: StepView, now: float) -> tuple[str, ...]:
        attempts = str(view.attempts) if view.attempts else "-"
        cells = (view.icon, view.step_id, view.tool, attempts, view.duration(now))
        if self.needs:
            return (*cells, ", ".join(self.needs.get(view.step_id, ())))
        return cells
