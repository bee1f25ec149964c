"""A run's steps as bars on one time axis: when each started after the run did, how long it
took (its retries and the waits between them included), and how it ended.

Drawn from the step records' started_at and finished_at alone, never from the log, so a run
whose log is a gigabyte draws as fast as any other. Bars are measured in eighths of a cell
(``▏`` to ``█``), so steps of a few seconds in a run of minutes still show their length.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from rich.text import Text
from textual.geometry import Size
from textual.widget import Widget

from ..records import record
from ..runs.event_text import ICONS, format_duration
from .history_table import STATUS_STYLES

if TYPE_CHECKING:
    from ..history.store import RunRecord, StepRecord

EIGHTHS = "▏▎▍▌▋▊▉█"
NAME_WIDTH = 16  # longer step ids are cut, so the bars keep their room in 80 columns
MIN_BAR_WIDTH = 10


@record(frozen=True)
class Span:
    """A step placed on the axis, in seconds from the run's start."""

    step_id: str
    status: str
    start: float | None  # None: it never started (skipped, or still pending)
    seconds: float
    attempts: int


def spans(run: RunRecord, steps: Sequence[StepRecord], now: float) -> tuple[list[Span], float]:
    """The steps on an axis starting when the run did; and the axis's length in seconds."""
    starts = [step.started_at for step in steps if step.started_at is not None]
    origin = run.started_at if run.started_at is not None else min(starts, default=now)
    placed = []
    end = run.finished_at if run.finished_at is not None else origin
    for step in steps:
        if step.started_at is None:
            placed.append(Span(step.step_id, step.status, None, 0.0, step.attempts))
            continue
        finished = step.finished_at if step.finished_at is not None else now
        end = max(end, finished)
        placed.append(
            Span(
                step.step_id,
                step.status,
                step.started_at - origin,
                max(0.0, finished - step.started_at),
                step.attempts,
            )
        )
    if run.finished_at is None and run.is_active:
        end = max(end, now)
    return placed, max(0.0, end - origin)


def bar(start: float, seconds: float, total: float, width: int) -> str:
    """A bar for ``[start, start + seconds]`` of ``total`` seconds drawn ``width`` cells wide:
    leading spaces, then whole and partial blocks; never less than ``▏``."""
    if total <= 0:
        return EIGHTHS[0]
    first = max(0, min(round(start / total * width), width - 1))
    last = min((start + seconds) / total * width, width)
    eighths = max(1, round((last - first) * 8))
    whole, part = divmod(eighths, 8)
    return " " * first + "█" * whole + (EIGHTHS[part - 1] if part else "")


def label(span: Span) -> str:
    if span.start is None:
        return span.status
    tries = f", {span.attempts} tries" if span.attempts > 1 else ""
    return format_duration(span.seconds) + tries


def timeline_text(run: RunRecord, steps: Sequence[StepRecord], width: int, now: float) -> Text:
    """The axis and one line a step, fitted to ``width`` cells."""
    placed, total = spans(run, steps, now)
    names = min(max((len(span.step_id) for span in placed), default=4), NAME_WIDTH)
    labels = max((len(label(span)) for span in placed), default=0)
    bars = max(MIN_BAR_WIDTH, width - names - labels - 4)  # icon and three spaces
    text = Text(no_wrap=True, overflow="crop")
    axis_end = format_duration(total)
    heading = "timeline"[: names + 2]
    text.append(f"{heading:<{names + 2}} 0s{axis_end:>{bars - 2}}\n", style="dim")
    for index, span in enumerate(placed):
        name = span.step_id if len(span.step_id) <= names else span.step_id[: names - 1] + "…"
        style = STATUS_STYLES.get(span.status, "")
        text.append(f"{ICONS.get(span.status, '?')} ", style=style)
        text.append(f"{name:<{names}} ")
        if span.start is None:
            text.append(f"{'':{bars}} ")
            text.append(label(span), style="dim")
        else:
            drawn = bar(span.start, span.seconds, total, bars)
            text.append(f"{drawn:<{bars}}", style=style)
            text.append(f" {label(span)}")
        if index < len(placed) - 1:
            text.append("\n")
    return text


class Timeline(Widget):
    """The timeline of one run's steps, redrawn to the width it is given."""

    DEFAULT_CSS = """
    Timeline { height: auto; padding: 0 1; }
    """

    def __init__(self, run: RunRecord, steps: Sequence[StepRecord]) -> None:
        super().__init__(id="timeline")
        self.run_record = run
        self.steps = steps

    def get_content_height(self, container: Size, viewport: Size, width: int) -> int:
        return len(self.steps) + 1

    def render(self) -> Text:
        return timeline_text(self.run_record, self.steps, self.size.width, time.time())
