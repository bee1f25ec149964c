"""The history browser, driven headless with Pilot over a real store."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest
from textual.content import Content
from textual.pilot import Pilot
from textual.widgets import Input, Static

from toolrun.history.store import HistoryQuery, Store
from toolrun.runs.events import OUTPUT, RUN_FINISHED, Event, EventLog
from toolrun.tui.confirm import Confirm
from toolrun.tui.history_app import HistoryApp, parse_filter
from toolrun.tui.history_table import PAGE, HistoryTable
from toolrun.tui.log_view import LogView
from toolrun.tui.run_screen import RunScreen


def make_runs(
    home: Path, count: int, *, status: str = "succeeded", toolchain: str = "t"
) -> list[str]:
    store = Store(home)
    ids = []
    for index in range(count):
        record, owner = store.create_run(
            toolchain=toolchain, params={"n": index}, steps=[("a", "probe", "probe")]
        )
        log = EventLog(store.run_dir(record.id) / "events.jsonl")
        log.append(
            Event(
                1, time.time(), OUTPUT, "a", 1, {"stream": "stdout", "lines": [f"line of {index}"]}
            )
        )
        log.append(Event(2, time.time(), RUN_FINISHED, data={"status": status}))
        log.close()
        store.update_run(record.id, status=status, started_at=time.time(), finished_at=time.time())
        owner.release()
        ids.append(record.id)
    store.close()
    return ids


async def settle(pilot: Pilot[Any]) -> None:
    await pilot.pause(0.1)


def status_line(app: HistoryApp) -> str:
    """The words in the history browser's status line."""
    shown = app.query_one("#status", Static).render()
    assert isinstance(shown, Content)  # it is updated with a str
    return shown.plain


def test_filter_words() -> None:
    assert parse_filter("failed export-job d01", ["export-job"]).__dict__ == {
        "status": "failed",
        "toolchain": "export-job",
        "text": "d01",
    }
    assert parse_filter("status:running toolchain:x").status == "running"
    assert parse_filter("").text is None


def test_pages_filter_open_and_back(toolrun_home: Path) -> None:
    ok = make_runs(toolrun_home, PAGE + 20)
    bad = make_runs(toolrun_home, 3, status="failed", toolchain="nightly")

    async def scenario() -> None:
        app = HistoryApp(Store(toolrun_home), HistoryQuery())
        async with app.run_test(size=(120, 40)) as pilot:
            await settle(pilot)
            table = app.query_one(HistoryTable)
            assert len(table.runs) == PAGE and not table.exhausted  # one page, not every row
            assert table.runs[0].id == bad[-1]
            await pilot.press("ctrl+end")  # to the last loaded row: the next page loads
            await settle(pilot)
            assert len(table.runs) == PAGE + 23 and table.exhausted
            await pilot.press("slash")
            assert app.focused is app.query_one("#filter", Input)
            await pilot.press(*"failed", "enter")
            await settle(pilot)
            assert [run.id for run in table.runs] == bad[::-1]
            await pilot.press("enter")
            await settle(pilot)
            assert isinstance(app.screen, RunScreen)
            await pilot.pause(0.3)
            view = app.screen.query_one(LogView)
            assert [view.line(i) for i in range(view.index.line_count)][:1] == ["line of 2"]
            await pilot.press("escape")
            assert not isinstance(app.screen, RunScreen)
            await pilot.press("q")
        assert ok

    asyncio.run(scenario())


def test_delete_asks_and_removes(toolrun_home: Path) -> None:
    ids = make_runs(toolrun_home, 2)

    async def scenario() -> None:
        app = HistoryApp(Store(toolrun_home), HistoryQuery())
        async with app.run_test(size=(120, 40)) as pilot:
            await settle(pilot)
            await pilot.press("d")
            assert isinstance(app.screen, Confirm)
            await pilot.press("y")
            await settle(pilot)
            assert [run.id for run in app.query_one(HistoryTable).runs] == [ids[0]]
            await pilot.press("y")  # copy the id
            await pilot.press("q")

    asyncio.run(scenario())
    assert not (toolrun_home / "runs" / ids[1]).exists()


def test_a_live_run_updates_in_place(toolrun_home: Path) -> None:
    store = Store(toolrun_home)
    record, owner = store.create_run(toolchain="live", params={}, steps=[])
    store.update_run(record.id, status="running", started_at=time.time())

    async def scenario() -> None:
        app = HistoryApp(Store(toolrun_home), HistoryQuery())
        async with app.run_test(size=(120, 40)) as pilot:
            await settle(pilot)
            table = app.query_one(HistoryTable)
            assert table.runs[0].status == "running"
            store.update_run(record.id, status="succeeded", finished_at=time.time())
            for _ in range(40):
                await pilot.pause(0.1)
                if table.runs[0].status == "succeeded":
                    break
            else:
                pytest.fail("the running run never updated")
            await pilot.press("q")

    asyncio.run(scenario())
    owner.release()


def test_r_hands_the_selected_run_back_for_a_rerun(toolrun_home: Path) -> None:
    ids = make_runs(toolrun_home, 2)

    async def scenario() -> HistoryApp:
        app = HistoryApp(Store(toolrun_home), HistoryQuery())
        async with app.run_test(size=(120, 40)) as pilot:
            await settle(pilot)
            await pilot.press("down", "r")
            await settle(pilot)
        return app

    assert asyncio.run(scenario()).rerun_id == ids[0]


def test_clicking_a_heading_sorts_by_it(toolrun_home: Path) -> None:
    make_runs(toolrun_home, 3, toolchain="b-chain")
    make_runs(toolrun_home, 2, toolchain="a-chain")
    make_runs(toolrun_home, 1, toolchain="c-chain")

    async def scenario() -> None:
        app = HistoryApp(Store(toolrun_home), HistoryQuery())
        async with app.run_test(size=(120, 40)) as pilot:
            await settle(pilot)
            table = app.query_one(HistoryTable)
            assert table.runs[0].toolchain == "c-chain"
            await pilot.click("HistoryTable", offset=(22, 0))  # the toolchain heading
            await settle(pilot)
            assert table.query_ is not None and table.query_.order == "toolchain"
            assert [r.toolchain for r in table.runs] == ["c-chain"] + ["b-chain"] * 3 + [
                "a-chain"
            ] * 2
            await pilot.click("HistoryTable", offset=(22, 0))
            await settle(pilot)
            assert table.runs[0].toolchain == "a-chain"
            await pilot.press("q")

    asyncio.run(scenario())


def test_deleting_from_a_runs_details_goes_back_to_the_list(toolrun_home: Path) -> None:
    ids = make_runs(toolrun_home, 2)

    async def scenario() -> None:
        app = HistoryApp(Store(toolrun_home), HistoryQuery())
        async with app.run_test(size=(120, 40)) as pilot:
            await settle(pilot)
            await pilot.press("enter")
            await settle(pilot)
            assert isinstance(app.screen, RunScreen)
            await pilot.press("d", "y")
            await settle(pilot)
            assert not isinstance(app.screen, (RunScreen, Confirm))
            assert [run.id for run in app.query_one(HistoryTable).runs] == [ids[0]]
            await pilot.press("q")

    asyncio.run(scenario())


def test_the_keys_panel_lists_toolruns_keys_first_and_j_k_move(toolrun_home: Path) -> None:
    from toolrun.tui.keys_panel import KeysPanel

    make_runs(toolrun_home, 3)
    store = Store(toolrun_home)

    async def drive() -> None:
        app = HistoryApp(store, HistoryQuery())
        async with app.run_test() as pilot:
            await settle(pilot)
            table = app.query_one(HistoryTable)
            assert status_line(app).startswith("3 runs")
            await pilot.press("j", "j")
            assert table.cursor_row == 2
            await pilot.press("k")
            assert table.cursor_row == 1
            await pilot.press("question_mark")
            await settle(pilot)
            rows = [str(cell) for cell in app.query_one(KeysPanel).keys_table().columns[1].cells]
            assert rows[0] == "toolrun" and "Filter" in rows[:10] and "Rerun" in rows[:10]
            assert rows.index("moving around") > rows.index("Quit")
            await pilot.press("question_mark")
            await settle(pilot)
            assert not app.query(KeysPanel)

    asyncio.run(drive())
    store.close()
    make_runs(toolrun_home / "one", 1)
    alone = Store(toolrun_home / "one")

    async def one() -> None:
        app = HistoryApp(alone, HistoryQuery())
        async with app.run_test() as pilot:
            await settle(pilot)
            assert status_line(app) == "1 run"

    asyncio.run(one())
    alone.close()


def timed_runs(home: Path, toolchain: str, seconds: list[float], failed: set[int]) -> list[str]:
    """Ended runs of ``toolchain``, oldest first, each taking the given seconds."""
    store = Store(home)
    ids = []
    for index, took in enumerate(seconds):
        record, owner = store.create_run(toolchain=toolchain, params={}, steps=[])
        status = "failed" if index in failed else "succeeded"
        start = record.created_at
        store.update_run(record.id, status=status, started_at=start, finished_at=start + took)
        owner.release()
        ids.append(record.id)
    store.close()
    return ids


def trend_of(app: HistoryApp) -> tuple[str, str, list[str]]:
    """The trend line's words, its bars, and the style of each bar."""
    from toolrun.tui.trend import BARS, Trend

    shown = app.query_one(Trend).render()
    assert isinstance(shown, Content)
    bars = [(i, ch) for i, ch in enumerate(shown.plain) if ch in BARS]
    styles = []
    for i, _ in bars:
        styles.append(" ".join(str(s.style) for s in shown.spans if s.start <= i < s.end))
    return shown.plain, "".join(ch for _, ch in bars), styles


def test_the_selected_runs_toolchain_shows_its_recent_durations_as_bars(
    toolrun_home: Path,
) -> None:
    # export-job runs of 1 to 25 seconds, every fifth failing; then three nightly runs.
    timed_runs(toolrun_home, "export-job", [1.0 + i for i in range(25)], {4, 9, 14, 19, 24})
    timed_runs(toolrun_home, "nightly", [30.0, 60.0, 30.0], set())

    async def scenario() -> None:
        app = HistoryApp(Store(toolrun_home), HistoryQuery())
        async with app.run_test(size=(80, 24)) as pilot:
            await settle(pilot)
            words, bars, styles = trend_of(app)
            assert words.startswith("nightly: 3 runs up to this one ") and bars == "▄█▄"
            assert "median 30.0s, none failed" in words
            await pilot.press("down", "down", "down")  # the newest export-job run: it failed
            await settle(pilot)
            words, bars, styles = trend_of(app)
            assert words.startswith("export-job: 20 runs up to this one ")
            assert len(bars) == 20 and bars[-1] == "█" and bars == "".join(sorted(bars))
            assert "median 15.5s, 4 failed" in words
            red = [i for i, style in enumerate(styles) if "red" in style]
            assert red == [4, 9, 14, 19]  # the runs of 10, 15, 20 and 25 seconds
            await pilot.press("down")  # one run older: the line ends there
            await settle(pilot)
            words, bars, styles = trend_of(app)
            assert len(bars) == 20 and "median 14.5s, 4 failed" in words
            red = [i for i, style in enumerate(styles) if "red" in style]
            assert red == [0, 5, 10, 15]  # the newest bar now: the 24-second run, which passed
            await pilot.press("slash", *"toolchain:none-such", "enter")
            await settle(pilot)
            assert trend_of(app)[0] == ""  # no run selected, no line
            await pilot.press("q")

    asyncio.run(scenario())


def test_a_runs_details_show_its_steps_as_bars_on_one_time_axis(toolrun_home: Path) -> None:
    from toolrun.tui.timeline import Timeline

    store = Store(toolrun_home)
    record, owner = store.create_run(
        toolchain="t",
        params={},
        steps=[("meta", "probe", "probe"), ("export", "probe", "probe"), ("push", "p", "p")],
    )
    start = record.created_at
    store.update_run(record.id, status="failed", started_at=start, finished_at=start + 8)
    store.update_step(
        record.id, "meta", status="succeeded", attempts=1, started_at=start, finished_at=start + 2
    )
    store.update_step(
        record.id,
        "export",
        status="failed",
        attempts=2,
        started_at=start + 2,
        finished_at=start + 8,
    )
    store.update_step(record.id, "push", status="skipped")
    owner.release()
    store.close()

    async def scenario() -> None:
        app = HistoryApp(Store(toolrun_home), HistoryQuery())
        async with app.run_test(size=(80, 24)) as pilot:
            await settle(pilot)
            await pilot.press("enter")
            await settle(pilot)
            assert isinstance(app.screen, RunScreen)
            timeline = app.screen.query_one(Timeline)
            lines = timeline.render().plain.splitlines()
            assert [line.split()[:2] for line in lines] == [
                ["timeline", "0s"],
                ["✓", "meta"],
                ["✗", "export"],
                ["○", "push"],
            ]
            assert all(len(line) <= 78 for line in lines)
            assert lines[0].rstrip().endswith("8.0s")
            assert lines[1].rstrip().endswith("2.0s")
            assert lines[2].rstrip().endswith("6.0s, 2 tries")
            assert lines[3].rstrip().endswith("skipped") and "█" not in lines[3]

            def bar(line: str) -> tuple[int, int]:
                first = min(line.index(c) for c in "▏▎▍▌▋▊▉█" if c in line)
                last = max(line.rindex(c) for c in "▏▎▍▌▋▊▉█" if c in line)
                return first, last - first + 1

            meta, export = bar(lines[1]), bar(lines[2])
            assert meta[0] == lines[0].index("0s")  # both on the axis that starts at 0s
            assert export[0] == meta[0] + meta[1]  # export starts where meta ended
            assert abs(export[1] - 3 * meta[1]) <= 1  # and took three times as long
            await pilot.press("q")

    asyncio.run(scenario())
