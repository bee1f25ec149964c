"""Pictures drawn on the server as SVG, from plain data: a run's steps as a graph of their
``needs``, its attempts on a timeline, and a toolchain's recent runs as bars. No script draws
them, so they show with scripts off; every text in them is escaped.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from xml.sax.saxutils import escape

from ..records import record
from ..runs.event_text import format_duration

COLOURS = {
    "succeeded": "#12b76a",
    "failed": "#f04438",
    "timed_out": "#f04438",
    "worker_lost": "#f04438",
    "interrupted": "#f04438",
    "running": "#2e90fa",
    "queued": "#fdb022",
    "paused": "#fdb022",
    "pending": "#d0d5dd",
    "cancelled": "#98a2b3",
    "skipped": "#eaecf0",
}
NODE_W, NODE_H, GAP_X, GAP_Y = 160, 34, 56, 14


def _colour(status: str) -> str:
    return COLOURS.get(status, "#d0d5dd")


def _text(value: str, limit: int) -> str:
    return escape(value if len(value) <= limit else value[: limit - 1] + "…")


def levels(order: Sequence[str], needs: Mapping[str, Sequence[str]]) -> dict[str, int]:
    """Each step's column: one more than the furthest of its needs (0 for a root)."""
    found: dict[str, int] = {}

    def level(step: str, trail: tuple[str, ...] = ()) -> int:
        if step in found:
            return found[step]
        if step in trail:  # a cycle never loads, but a picture must not loop
            return 0
        wanted = [n for n in needs.get(step, ()) if n in needs]
        found[step] = 1 + max((level(n, (*trail, step)) for n in wanted), default=-1)
        return found[step]

    for step in order:
        level(step)
    return found


def dag_svg(
    order: Sequence[str], needs: Mapping[str, Sequence[str]], states: Mapping[str, str]
) -> str:
    columns = levels(order, needs)
    rows: dict[int, int] = {}
    place: dict[str, tuple[int, int]] = {}
    for step in order:
        column = columns[step]
        place[step] = (column, rows.get(column, 0))
        rows[column] = rows.get(column, 0) + 1
    width = (max(columns.values(), default=0) + 1) * (NODE_W + GAP_X) - GAP_X + 4
    height = max(rows.values(), default=1) * (NODE_H + GAP_Y) - GAP_Y + 4

    def corner(step: str) -> tuple[int, int]:
        column, row = place[step]
        return 2 + column * (NODE_W + GAP_X), 2 + row * (NODE_H + GAP_Y)

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="dag" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}" role="img">'
    ]
    for step in order:
        x2, y2 = corner(step)
        for need in needs.get(step, ()):
            if need not in place:
                continue
            x1, y1 = corner(need)
            a, b = (x1 + NODE_W, y1 + NODE_H // 2), (x2, y2 + NODE_H // 2)
            middle = (a[0] + b[0]) // 2
            parts.append(
                f'<path d="M{a[0]},{a[1]} C{middle},{a[1]} {middle},{b[1]} {b[0]},{b[1]}" '
                'fill="none" stroke="#98a2b3" stroke-width="1.5"/>'
            )
    for step in order:
        x, y = corner(step)
        status = states.get(step, "pending")
        parts.append(
            f'<g data-step="{escape(step)}"><title>{escape(step)}: {escape(status)}</title>'
            f'<rect x="{x}" y="{y}" width="{NODE_W}" height="{NODE_H}" rx="6" '
            f'fill="#fff" stroke="{_colour(status)}" stroke-width="2"/>'
            f'<rect x="{x}" y="{y}" width="6" height="{NODE_H}" rx="3" fill="{_colour(status)}"/>'
            f'<text x="{x + 14}" y="{y + 22}" font-size="13">{_text(step, 20)}</text></g>'
        )
    parts.append("</svg>")
    return "".join(parts)


@record(frozen=True)
class Span:
    """One attempt of a step on the timeline."""

    step: str
    attempt: int
    start: float
    end: float | None  # None: still going
    status: str


ROW_H, LABEL_W, CHART_W = 24, 150, 760


def timeline_svg(steps: Sequence[str], spans: Sequence[Span], start: float, end: float) -> str:
    """Each step a row, each attempt a bar from its start to its end; a gap between two bars
    of a step is the wait before a retry."""
    total = max(end - start, 0.001)
    height = len(steps) * ROW_H + 24
    width = LABEL_W + CHART_W + 10
    row_of = {step: index for index, step in enumerate(steps)}

    def x(moment: float) -> float:
        return LABEL_W + (moment - start) / total * CHART_W

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="timeline" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}" role="img">'
    ]
    for step, row in row_of.items():
        y = row * ROW_H
        parts.append(
            f'<text x="0" y="{y + 16}" font-size="12">{_text(step, 20)}</text>'
            f'<line x1="{LABEL_W}" x2="{LABEL_W + CHART_W}" y1="{y + ROW_H - 2}" '
            f'y2="{y + ROW_H - 2}" stroke="#eaecf0"/>'
        )
    for span in spans:
        if span.step not in row_of:
            continue
        y = row_of[span.step] * ROW_H + 4
        left = x(span.start)
        right = x(span.end if span.end is not None else end)
        took = (span.end or end) - span.start
        parts.append(
            f'<rect x="{left:.1f}" y="{y}" width="{max(right - left, 2):.1f}" height="{ROW_H - 10}"'
            f' rx="3" fill="{_colour(span.status)}"><title>{escape(span.step)} #{span.attempt}: '
            f"{escape(span.status)}, {escape(format_duration(took))}</title></rect>"
        )
    axis_y = len(steps) * ROW_H + 16
    for fraction in (0, 0.25, 0.5, 0.75, 1):
        parts.append(
            f'<text x="{LABEL_W + fraction * CHART_W:.0f}" y="{axis_y}" font-size="11" '
            f'fill="#667085" text-anchor="middle">+{escape(format_duration(total * fraction))}'
            "</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


@record(frozen=True)
class Bar:
    run_id: str
    status: str
    duration: float | None


def bars_svg(bars: Sequence[Bar]) -> str:
    """A toolchain's recent runs, oldest on the left: height the duration, colour the outcome
    (a slow-down or a string of failures shows at a glance)."""
    width, height, gap = 760, 120, 2
    longest = max((b.duration or 0 for b in bars), default=0) or 1
    each = max(min(width / max(len(bars), 1) - gap, 24), 2)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="bars" width="{width}" '
        f'height="{height + 16}" viewBox="0 0 {width} {height + 16}" role="img">'
    ]
    for index, bar in enumerate(bars):
        tall = max((bar.duration or 0) / longest * height, 2)
        left = index * (each + gap)
        parts.append(
            f'<a href="/ui/runs/{escape(bar.run_id)}"><rect x="{left:.1f}" y="{height - tall:.1f}" '
            f'width="{each:.1f}" height="{tall:.1f}" fill="{_colour(bar.status)}">'
            f"<title>{escape(bar.run_id)}: {escape(bar.status)}, "
            f"{escape(format_duration(bar.duration))}</title></rect></a>"
        )
    parts.append(
        f'<text x="0" y="{height + 14}" font-size="11" fill="#667085">'
        f"max {escape(format_duration(longest))}</text></svg>"
    )
    return "".join(parts)


def percentile(values: Sequence[float], fraction: float) -> float | None:
    """The nearest-rank percentile (p50 is the median of an odd count)."""
    if not values:
        return None
    import math

    ordered = sorted(values)
    rank = min(len(ordered), max(1, math.ceil(fraction * len(ordered))))
    return ordered[rank - 1]
