"""The live run view, driven headless with Textual's Pilot against the real engine."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot

from toolrun.executors.local import LocalExecutor
from toolrun.history.store import Store
from toolrun.runs.engine import Engine, EngineSettings, RunHandle
from toolrun.toolchains.model import parse_toolchain
from toolrun.tools.installer import Installer
from toolrun.tools.registry import FolderRegistry
from toolrun.tools.resolver import ToolResolver
from toolrun.tui.confirm import Confirm
from toolrun.tui.log_view import LogView
from toolrun.tui.run_app import EngineRun, RunApp
from toolrun.tui.step_table import StepTable


def prepare(home: Path, registry: Path, text: str) -> tuple[Engine, RunHandle]:
    store = Store(home)
    resolver = ToolResolver(Installer(home / "tools"), [FolderRegistry("test", registry)])
    local = LocalExecutor(kill_grace=1.0)
    engine = Engine(store, resolver, EngineSettings(kill_grace=1.0), executor=local, blocking=local)
    toolchain = parse_toolchain(text, name="t", source="t.yaml")
    return engine, engine.prepare(toolchain, {})


def shown(app: RunApp) -> list[str]:
    view = app.query_one(LogView)
    return [view.line(i) for i in range(view.index.line_count)]


async def until(condition: Callable[[], bool], pilot: Pilot[Any], seconds: float = 20) -> None:
    for _ in range(int(seconds / 0.05)):
        if condition():
            return
        await pilot.pause(0.05)
    pytest.fail("the app never got there")


def test_steps_and_output_appear_and_q_quits_with_the_exit_code(
    probe: Path, toolrun_home: Path
) -> None:
    engine, handle = prepare(
        toolrun_home,
        probe,
        "toolchain:\n"
        "  - first: {cmd: probe, args: [echo, hello from first]}\n"
        "  - second: {cmd: probe, args: [stderr, careful]}\n",
    )

    async def scenario() -> int | None:
        app = RunApp(EngineRun(engine, handle))
        async with app.run_test(size=(100, 30)) as pilot:
            await until(lambda: app.final is not None, pilot)
            await pilot.pause(0.1)
            await until(lambda: any("second: succeeded" in line for line in shown(app)), pilot)
            lines = shown(app)
            assert "first | hello from first" in lines
            assert "second ! careful" in lines
            steps = app.query_one(StepTable).steps
            assert [v.status for v in steps.values()] == ["succeeded", "succeeded"]
            assert steps["first"].tool == "probe 2.0.0" and steps["first"].attempts == 1
            await pilot.press("q")
        return app.return_value

    assert asyncio.run(scenario()) == 0


def test_c_then_yes_cancels_the_run(probe: Path, toolrun_home: Path) -> None:
    engine, handle = prepare(
        toolrun_home, probe, "toolchain:\n  - wait: {cmd: probe, args: [sleep, '60']}\n"
    )

    async def scenario() -> int | None:
        app = RunApp(EngineRun(engine, handle))
        async with app.run_test(size=(100, 30)) as pilot:
            await until(lambda: "sleeping" in "".join(shown(app)), pilot)
            await pilot.press("c")
            assert isinstance(app.screen, Confirm)
            await pilot.press("n")
            assert not handle.cancel_event.is_set()
            await pilot.press("c", "y")
            await until(lambda: app.final is not None, pilot)
            assert app.final is not None and app.final.status == "cancelled"
            assert app.query_one(StepTable).steps["wait"].status == "cancelled"
            await pilot.press("q")
        return app.return_value

    assert asyncio.run(scenario()) == 130


def test_quitting_a_live_run_asks_then_cancels_it(probe: Path, toolrun_home: Path) -> None:
    engine, handle = prepare(
        toolrun_home, probe, "toolchain:\n  - wait: {cmd: probe, args: [sleep, '60']}\n"
    )

    async def scenario() -> int | None:
        app = RunApp(EngineRun(engine, handle))
        async with app.run_test(size=(100, 30)) as pilot:
            await until(lambda: "sleeping" in "".join(shown(app)), pilot)
            await pilot.press("q")
            assert isinstance(app.screen, Confirm)
            await pilot.press("y")
            await until(lambda: app.return_value is not None, pilot)
        return app.return_value

    assert asyncio.run(scenario()) == 130
    assert engine.store.require_run(handle.id).status == "cancelled"


def test_search_and_one_step_at_a_time(probe: Path, toolrun_home: Path) -> None:
    engine, handle = prepare(
        toolrun_home,
        probe,
        "toolchain:\n"
        "  - lots: {cmd: probe, args: [lines, '3000']}\n"
        "  - other: {cmd: probe, args: [echo, needle in other]}\n",
    )

    async def scenario() -> None:
        app = RunApp(EngineRun(engine, handle))
        async with app.run_test(size=(100, 30)) as pilot:
            await until(lambda: app.final is not None, pilot)
            view = app.query_one(LogView)
            await until(lambda: view.done, pilot)
            await pilot.press("slash", *"line 2500 of", "enter")
            await until(lambda: view.match is not None, pilot)
            assert view.match is not None
            assert "line 2500 of" in view.line(view.match[0])
            await pilot.press("n")  # the next match: none below, so it stays
            await pilot.pause(0.3)
            table = app.query_one(StepTable)
            table.focus()
            await pilot.press("down", "enter")  # the second step only
            await until(lambda: view.done and view.index.step == "other", pilot)
            lines = [view.line(i) for i in range(view.index.line_count)]
            assert "needle in other" in lines
            assert not any("of the probe's output" in line for line in lines)
            await pilot.press("a")
            await until(lambda: view.done and view.index.line_count > 3000, pilot)
            await pilot.press("q")

    asyncio.run(scenario())


def test_r_asks_for_a_rerun_once_the_run_has_ended(probe: Path, toolrun_home: Path) -> None:
    engine, handle = prepare(
        toolrun_home, probe, "toolchain:\n  - wait: {cmd: probe, args: [sleep, '2']}\n"
    )

    async def scenario() -> RunApp:
        app = RunApp(EngineRun(engine, handle))
        async with app.run_test(size=(100, 30)) as pilot:
            await until(lambda: "sleeping" in "".join(shown(app)), pilot)
            assert app.final is None
            await pilot.press("r")  # still running: refused
            assert not app.rerun_requested
            offered = {b.binding.action for b in app.active_bindings.values() if b.enabled}
            assert "cancel" in offered and "rerun" not in offered
            await until(lambda: app.final is not None, pilot)
            offered = {b.binding.action for b in app.active_bindings.values() if b.enabled}
            assert "rerun" in offered and "cancel" not in offered
            await pilot.press("r")
            await until(lambda: app.return_value is not None, pilot)
        return app

    app = asyncio.run(scenario())
    assert app.rerun_requested and app.return_value == 0


def header(app: RunApp) -> str:
    from textual.widgets import Static

    return str(app.query_one("#header", Static).render())


def step_time(app: RunApp, step: str) -> str:
    return str(app.query_one(StepTable).get_cell(step, "time"))


def seconds(shown: str) -> int:
    """``7s`` as the running clock shows it."""
    assert shown.endswith("s") and shown[:-1].isdigit(), shown
    return int(shown[:-1])


def test_the_header_counts_steps_done_and_a_running_steps_time_ticks(
    probe: Path, toolrun_home: Path
) -> None:
    engine, handle = prepare(
        toolrun_home,
        probe,
        "toolchain:\n"
        "  - wait: {cmd: probe, args: [sleep, '3']}\n"
        "  - after: {cmd: probe, args: [sleep, '1'], needs: [wait]}\n",
    )

    async def scenario() -> None:
        app = RunApp(EngineRun(engine, handle))
        async with app.run_test(size=(100, 30)) as pilot:
            assert "0/2 steps done" in header(app)
            await until(lambda: "sleeping" in "".join(shown(app)), pilot)
            assert step_time(app, "after") == "-"
            first = seconds(step_time(app, "wait"))
            await pilot.pause(2.1)
            assert "0/2 steps done" in header(app) and "running" in header(app)
            assert first + 1 <= seconds(step_time(app, "wait")) <= first + 3
            await until(lambda: "1/2 steps done" in header(app), pilot)
            await until(lambda: app.final is not None, pilot)
            assert "2/2 steps done" in header(app) and "succeeded" in header(app)
            ended = step_time(app, "wait")
            assert ended.endswith("s") and "." in ended  # a finished time has its tenths
            at_end = header(app)
            await pilot.pause(1.3)  # nothing runs: no clock moves
            assert header(app) == at_end and step_time(app, "wait") == ended
            await pilot.press("q")

    asyncio.run(scenario())


def test_a_frozen_steps_time_stands_still_until_it_resumes(probe: Path, toolrun_home: Path) -> None:
    engine, handle = prepare(
        toolrun_home, probe, "toolchain:\n  - wait: {cmd: probe, args: [sleep, '60']}\n"
    )

    async def scenario() -> None:
        app = RunApp(EngineRun(engine, handle))
        async with app.run_test(size=(100, 30)) as pilot:
            await until(lambda: "sleeping" in "".join(shown(app)), pilot)
            await pilot.pause(1.1)
            await pilot.press("P")  # pause now: the step's process is frozen
            table = app.query_one(StepTable)
            await until(lambda: table.get_cell("wait", "icon") == "⏸", pilot)
            assert "paused" in header(app)
            frozen = step_time(app, "wait")
            await pilot.pause(2.2)
            assert step_time(app, "wait") == frozen
            await pilot.press("p")  # resume
            await until(lambda: table.get_cell("wait", "icon") == "▶", pilot)
            await pilot.pause(2.2)
            # It goes on from where it stood, not from the wall clock's time.
            assert seconds(frozen) + 1 <= seconds(step_time(app, "wait")) <= seconds(frozen) + 3
            await pilot.press("c", "y")
            await until(lambda: app.final is not None, pilot)
            assert "1/1 steps done" in header(app)

    asyncio.run(scenario())


def test_a_step_waiting_to_retry_is_not_done_and_its_time_goes_on(
    probe: Path, toolrun_home: Path
) -> None:
    engine, handle = prepare(
        toolrun_home,
        probe,
        "toolchain:\n  - flaky: {cmd: probe, args: [fail, '3'], retries: {max: 1, delay: 3s}}\n",
    )

    async def scenario() -> None:
        app = RunApp(EngineRun(engine, handle))
        async with app.run_test(size=(100, 30)) as pilot:
            table = app.query_one(StepTable)
            await until(lambda: table.get_cell("flaky", "icon") == "↻", pilot)
            assert "0/1 steps done" in header(app)
            waiting = seconds(step_time(app, "flaky"))
            await pilot.pause(1.6)
            assert seconds(step_time(app, "flaky")) > waiting
            await until(lambda: app.final is not None, pilot)
            assert "1/1 steps done" in header(app) and "failed" in header(app)
            assert table.get_cell("flaky", "icon") == "✗"
            assert table.get_cell("flaky", "tries") == "2"
            await pilot.press("q")

    asyncio.run(scenario())


def test_a_rerun_from_the_failed_step_counts_the_steps_it_keeps_as_done(
    probe: Path, toolrun_home: Path
) -> None:
    from toolrun.runs.reruns import plan_rerun

    engine, handle = prepare(
        toolrun_home,
        probe,
        "toolchain:\n"
        "  - meta: {cmd: probe, args: [echo, meta]}\n"
        "  - export: {cmd: probe, args: [fail, '2'], needs: [meta]}\n",
    )
    first = asyncio.run(engine.execute(handle))
    assert first.status == "failed"
    toolchain, params, options = plan_rerun(
        engine.store, first.id, from_failed=True, toolchain_dirs=[]
    )
    again = engine.prepare(toolchain, params, options)

    async def scenario() -> None:
        app = RunApp(EngineRun(engine, again))
        async with app.run_test(size=(100, 30)) as pilot:
            table = app.query_one(StepTable)
            assert (
                table.get_cell("meta", "icon") == "✓" and table.get_cell("meta", "tool") == "kept"
            )
            assert "1/2 steps done" in header(app)
            await until(lambda: app.final is not None, pilot)
            assert "2/2 steps done" in header(app)
            await pilot.press("q")

    asyncio.run(scenario())
