"""The history browser's actions on runs that do not allow them, with nothing selected, from a
run's details and from the command palette: driven headless with Pilot over a real store."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from textual.pilot import Pilot
from textual.widgets import DataTable, Input
from tui_history_test import make_runs, settle, status_line

from toolrun.history.store import HistoryQuery, Store
from toolrun.runs.events import OUTPUT, RUN_FINISHED, Event, EventLog
from toolrun.tui.confirm import Confirm
from toolrun.tui.history_app import HistoryApp
from toolrun.tui.history_table import HistoryTable
from toolrun.tui.run_screen import RunScreen


def notes(app: HistoryApp) -> list[str]:
    """What the app has told the user so far (its toasts)."""
    return [notification.message for notification in app._notifications]


def live_run(home: Path) -> str:
    """A running run, as another toolrun leaves it while it goes (its owner lock released)."""
    store = Store(home)
    record, owner = store.create_run(toolchain="live", params={}, steps=[("a", "probe", "p")])
    store.update_run(record.id, status="running", started_at=time.time())
    owner.release()
    store.close()
    return record.id


def two_step_run(home: Path) -> str:
    store = Store(home)
    record, owner = store.create_run(
        toolchain="pair", params={}, steps=[("a", "probe", "p"), ("b", "probe", "p")]
    )
    log = EventLog(store.run_dir(record.id) / "events.jsonl")
    now = time.time()
    log.append(Event(1, now, OUTPUT, "a", 1, {"stream": "stdout", "lines": ["from a"]}))
    log.append(Event(2, now, OUTPUT, "b", 1, {"stream": "stderr", "lines": ["from b", "b2"]}))
    log.append(Event(3, now, RUN_FINISHED, data={"status": "succeeded"}))
    log.close()
    store.update_run(record.id, status="succeeded", started_at=now, finished_at=now)
    owner.release()
    store.close()
    return record.id


async def palette(pilot: Pilot[Any], command: str) -> None:
    """Run a command from the command palette (ctrl+p), by its name."""
    await pilot.press("ctrl+p")
    await settle(pilot)
    await pilot.press(*command)
    await pilot.pause(0.15)
    await pilot.press("enter")
    await settle(pilot)


def test_a_running_run_can_be_cancelled_after_a_yes_and_not_rerun_or_deleted(
    toolrun_home: Path,
) -> None:
    run_id = live_run(toolrun_home)
    store = Store(toolrun_home)

    async def scenario() -> HistoryApp:
        app = HistoryApp(store, HistoryQuery())
        async with app.run_test(size=(120, 40)) as pilot:
            await settle(pilot)
            await pilot.press("r")  # not while it runs
            await pilot.press("d")  # nor deleted
            await settle(pilot)
            assert not isinstance(app.screen, Confirm)
            await pilot.press("c", "n")  # asked, and told no
            await settle(pilot)
            assert not store.cancel_requested(run_id)
            await pilot.press("c")
            await settle(pilot)
            assert isinstance(app.screen, Confirm)
            await pilot.press("y")
            await settle(pilot)
            assert store.cancel_requested(run_id)
            assert not isinstance(app.screen, Confirm)
            assert notes(app) == [
                "choose a run that has ended",
                "cancel the run before deleting it",
                f"cancel requested for {run_id}",
            ]
            await pilot.press("q")
        return app

    app = asyncio.run(scenario())
    assert app.rerun_id is None
    assert (toolrun_home / "runs" / run_id).is_dir()
    store.close()


def test_a_run_that_ended_cannot_be_cancelled_and_a_no_keeps_it(toolrun_home: Path) -> None:
    (run_id,) = make_runs(toolrun_home, 1, status="failed")
    store = Store(toolrun_home)

    async def scenario() -> None:
        app = HistoryApp(store, HistoryQuery())
        async with app.run_test(size=(120, 40)) as pilot:
            await settle(pilot)
            await pilot.press("c")
            await settle(pilot)
            assert not isinstance(app.screen, Confirm)
            assert notes(app) == ["only a queued or running run can be cancelled"]
            await pilot.press("d", "n")  # asked, and told no
            await settle(pilot)
            assert [run.id for run in app.query_one(HistoryTable).runs] == [run_id]
            await pilot.press("q")

    asyncio.run(scenario())
    assert not store.cancel_requested(run_id)
    assert (toolrun_home / "runs" / run_id).is_dir()
    store.close()


def test_with_no_runs_every_action_on_the_selection_does_nothing(
    toolrun_home: Path, workdir: Path
) -> None:
    store = Store(toolrun_home)

    async def scenario() -> HistoryApp:
        app = HistoryApp(store, HistoryQuery())
        async with app.run_test(size=(120, 40)) as pilot:
            await settle(pilot)
            assert status_line(app) == "0 runs"
            for key in ("enter", "d", "y", "e", "r", "c"):
                await pilot.press(key)
                await settle(pilot)
                assert not isinstance(app.screen, (RunScreen, Confirm)), key
            assert notes(app) == [
                "choose a run that has ended",
                "only a queued or running run can be cancelled",
            ]
            await pilot.press("q")
        return app

    app = asyncio.run(scenario())
    assert app.rerun_id is None and app.return_code == 0
    assert list(workdir.iterdir()) == []  # nothing exported
    store.close()


def test_export_writes_the_log_in_the_working_folder_prefixed_for_several_steps(
    toolrun_home: Path, workdir: Path
) -> None:
    (single,) = make_runs(toolrun_home, 1)
    pair = two_step_run(toolrun_home)  # the newest: first in the list
    store = Store(toolrun_home)

    async def scenario() -> list[str]:
        app = HistoryApp(store, HistoryQuery())
        async with app.run_test(size=(120, 40)) as pilot:
            await settle(pilot)
            await pilot.press("e")
            await settle(pilot)
            await pilot.press("down")
            await palette(pilot, "Export log")  # the same, from the command palette
            shown = notes(app)
            await pilot.press("q")
        return shown

    shown = asyncio.run(scenario())
    exported = workdir / f"toolrun-{pair}.log"
    assert shown == [f"wrote {exported}", f"wrote {workdir / f'toolrun-{single}.log'}"]
    lines = exported.read_text(encoding="utf-8").splitlines()
    assert [line for line in lines if "from" in line or "b2" in line] == [
        "a | from a",
        "b ! from b",  # stderr
        "b ! b2",
    ]
    assert "line of 0" in (workdir / f"toolrun-{single}.log").read_text(encoding="utf-8")
    assert "| line of 0" not in (workdir / f"toolrun-{single}.log").read_text(encoding="utf-8")
    store.close()


def test_escape_closes_an_open_filter_before_it_quits(toolrun_home: Path) -> None:
    make_runs(toolrun_home, 2)
    store = Store(toolrun_home)

    async def scenario() -> HistoryApp:
        app = HistoryApp(store, HistoryQuery())
        async with app.run_test(size=(120, 40)) as pilot:
            await settle(pilot)
            await pilot.press("slash")
            await settle(pilot)
            box = app.query_one("#filter", Input)
            assert box.has_class("visible") and box.has_focus
            await pilot.press("escape")
            await settle(pilot)
            assert app.is_running
            assert not box.has_class("visible")
            assert app.query_one(HistoryTable).has_focus
            await pilot.press("escape")
            await settle(pilot)
            assert not app.is_running
        return app

    assert asyncio.run(scenario()).return_code == 0
    store.close()


def test_the_steps_table_of_a_runs_details_neither_opens_nor_sorts_the_history(
    toolrun_home: Path,
) -> None:
    make_runs(toolrun_home, 2)
    store = Store(toolrun_home)

    async def scenario() -> None:
        app = HistoryApp(store, HistoryQuery())
        async with app.run_test(size=(120, 40)) as pilot:
            await settle(pilot)
            before = status_line(app)
            query = app.query_one(HistoryTable).query_
            await pilot.press("enter")
            await settle(pilot)
            assert isinstance(app.screen, RunScreen)
            app.screen.query_one("#steps", DataTable).focus()
            await pilot.press("enter")  # a step's row, not a run's
            await pilot.click("#steps", offset=(2, 0))  # a step column's heading
            await settle(pilot)
            assert len(app.screen_stack) == 2 and isinstance(app.screen, RunScreen)
            await pilot.press("escape")
            await settle(pilot)
            assert status_line(app) == before
            assert app.query_one(HistoryTable).query_ == query
            await pilot.press("q")

    asyncio.run(scenario())
    store.close()


def test_the_command_palette_offers_every_action_on_a_run(toolrun_home: Path) -> None:
    (older, newer) = make_runs(toolrun_home, 2)
    store = Store(toolrun_home)

    async def scenario() -> HistoryApp:
        app = HistoryApp(store, HistoryQuery())
        async with app.run_test(size=(120, 40)) as pilot:
            await settle(pilot)
            titles = [command.title for command in app.get_system_commands(app.screen)]
            for title in (
                "Filter runs",
                "Open run",
                "Rerun",
                "Cancel run",
                "Delete run",
                "Copy run id",
                "Export log",
            ):
                assert title in titles
            await pilot.press("down")
            await palette(pilot, "Rerun")
        return app

    assert asyncio.run(scenario()).rerun_id == older
    assert newer != older
    store.close()
