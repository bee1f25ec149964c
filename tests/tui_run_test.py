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
