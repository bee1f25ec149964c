"""One line of text for an event (runs/event_text.py), as every front end shows it, and the
plain stream's last line saying what toolrun itself knows went wrong."""

from __future__ import annotations

from typing import Any

import pytest

from toolrun.runs import events as ev
from toolrun.runs.event_text import (
    EndingNote,
    counted,
    describe_event,
    display_lines,
    format_duration,
    shown_value,
)
from toolrun.runs.events import Event


def event(kind: str, step: str | None = None, attempt: int | None = None, **data: Any) -> Event:
    return Event(1, 1796300000.0, kind, step, attempt, data)


@pytest.mark.parametrize(
    ("given", "text"),
    [
        (event(ev.RUN_STARTED, run="r1", toolchain="export-job"), "▶ run r1: export-job"),
        (event(ev.STEP_STARTED, "build", 1, tool="uexp", version="0.1.0"), "▶ build: uexp 0.1.0"),
        (event(ev.STEP_STARTED, "build", 2), "▶ build (attempt 2)"),
        (
            event(ev.STEP_FINISHED, "build", 1, status="succeeded", exit_code=0, duration=0.25),
            "✓ build: succeeded in 0.2s (exit 0)",
        ),
        (
            event(
                ev.STEP_FINISHED, "build", 3, status="timed_out", error="step timed out after 2s"
            ),
            "⏱ build: timed_out (attempt 3) (step timed out after 2s)",
        ),
        (
            event(ev.STEP_FINISHED, "x", 1, status="odd", exit_code=4),
            "· x: odd (exit 4)",
        ),
        (
            event(ev.STEP_SKIPPED, "push", status="skipped", reason="needs failed"),
            "○ push: skipped (needs failed)",
        ),
        (event(ev.MESSAGE, "build", text="careful"), "! build: careful"),
        (event(ev.OUTPUT_TRUNCATED, text="output cap reached"), "! output cap reached"),
        (event(ev.OUTPUT, "build", stream="stdout", lines=["a"]), None),
    ],
)
def test_each_event_reads_as_one_line(given: Event, text: str | None) -> None:
    assert describe_event(given) == text


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (None, "-"),
        (0.04, "0.0s"),
        (59.94, "59.9s"),
        (61, "1m01s"),
        (3599, "59m59s"),
        (7260, "2h01m"),
    ],
)
def test_durations_read_as_people_say_them(seconds: float | None, text: str) -> None:
    assert format_duration(seconds) == text


def test_output_in_a_log_is_prefixed_only_when_the_run_has_several_steps() -> None:
    out = event(ev.OUTPUT, "build", stream="stdout", lines=["one", "two"])
    err = event(ev.OUTPUT, "build", stream="stderr", lines=["oops"])
    assert display_lines(out, prefix=False) == ["one", "two"]
    assert display_lines(out, prefix=True) == ["build | one", "build | two"]
    assert display_lines(err, prefix=True) == ["build ! oops"]
    assert display_lines(event(ev.RUN_STARTED, run="r", toolchain="t"), prefix=True) == [
        "▶ run r: t"
    ]
    assert display_lines(event(ev.RUN_FINISHED, status="succeeded"), prefix=True) == []


def ending(events: list[Event], *, steps: bool = False) -> tuple[list[str | None], EndingNote]:
    note = EndingNote(steps=steps)
    return [note.see(e) for e in events], note


def test_a_clean_run_ends_without_a_toolrun_line() -> None:
    said, note = ending(
        [
            event(ev.STEP_FINISHED, "a", 1, status="failed", exit_code=3, error="exit 3"),
            event(ev.RUN_FINISHED, status="failed", exit_code=1),
        ]
    )
    assert said == [None, None]  # the tool's own failure is the tool's to say
    assert (note.status, note.exit_code, note.tool_exit_code) == ("failed", 1, 3)


def test_what_toolrun_knows_is_said_once_in_the_last_line() -> None:
    said, _ = ending(
        [
            event(ev.STEP_FINISHED, "a", 1, status="failed", error="cannot start ping: not found"),
            event(ev.STEP_FINISHED, "b", 1, status="timed_out", error="step timed out after 2s"),
            event(ev.STEP_FINISHED, "b", 2, status="timed_out", error="step timed out after 2s"),
            event(ev.OUTPUT_TRUNCATED, text="output cap of 1 MiB reached"),
            event(ev.MESSAGE, level="warning", text="not this one"),
            event(ev.RUN_FINISHED, status="failed", exit_code=1),
        ],
        steps=True,
    )
    assert said[-1] == (
        "toolrun: step a: cannot start ping: not found; step b: step timed out after 2s; "
        "output cap of 1 MiB reached (run failed)"
    )


def test_a_run_timeout_a_cancel_and_an_interruption() -> None:
    said, _ = ending(
        [
            event(ev.STEP_FINISHED, "a", 1, status="timed_out", error="run timed out"),
            event(ev.MESSAGE, level="error", text="run timed out after 5s"),
            event(ev.RUN_FINISHED, status="timed_out", exit_code=124),
        ]
    )
    assert said[-1] == "toolrun: run timed out after 5s (run timed_out)"
    said, note = ending([event(ev.RUN_FINISHED, status="cancelled", exit_code="130")])
    assert said == ["toolrun: run cancelled"] and note.exit_code is None
    said, _ = ending([event(ev.RUN_FINISHED, status="interrupted")])
    assert said == ["toolrun: run interrupted: the toolrun process running it ended"]


def test_values_are_shown_as_a_toolchain_writes_them() -> None:
    assert shown_value(True) == "true" and shown_value(None) == "null"
    assert shown_value({"k": "转"}) == '{"k": "转"}' and shown_value("plain") == "plain"
    assert counted(1, "run") == "1 run" and counted(2, "run") == "2 runs"
    assert counted(0, "entry", "entries") == "0 entries"
