"""Snapshots of the history browser and a run's details, from fixed data at a fixed size."""

from __future__ import annotations

import json
import time
import types
from pathlib import Path
from typing import Any

import pytest
from conftest import SnapCompare
from textual.pilot import Pilot

from toolrun.history.store import HistoryQuery, Store
from toolrun.runs.events import OUTPUT, RUN_FINISHED, STEP_FINISHED, STEP_STARTED, Event, EventLog
from toolrun.tui.history_app import HistoryApp

BASE = 1_735_725_600.0  # 2025-01-01 10:00:00 UTC


@pytest.fixture
def fixed_store(toolrun_home: Path, monkeypatch: pytest.MonkeyPatch) -> Store:
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    store = Store(toolrun_home)
    statuses = ["succeeded", "failed", "succeeded", "cancelled", "timed_out", "succeeded"]
    with store.connect(write=True) as db:
        for index, status in enumerate(statuses):
            created = BASE + index * 600
            run_id = time.strftime("%Y%m%d%H%M%S", time.gmtime(created)) + "-1"
            db.execute(
                "INSERT INTO runs (id, stamp, seq, toolchain, status, origin, requester, params,"
                " created_at, started_at, finished_at, exit_code) VALUES"
                " (?, ?, 1, ?, ?, 'cli', 'ci-bot', ?, ?, ?, ?, 0)",
                (
                    run_id,
                    run_id[:14],
                    "export-job" if index % 2 else "nightly",
                    status,
                    json.dumps({"table": "d01"}),
                    created,
                    created,
                    created + 12.5 + index,
                ),
            )
            for position, step in enumerate(("game-meta", "unity-export")):
                db.execute(
                    "INSERT INTO steps (run_id, step_id, position, tool, spec, version, sha256,"
                    " status, attempts, exit_code, started_at, finished_at) VALUES"
                    " (?, ?, ?, ?, ?, ?, ?, 'succeeded', 1, 0, ?, ?)",
                    (
                        run_id,
                        step,
                        position,
                        step,
                        step,
                        "1.0.0",
                        f"{position:064d}",
                        created + position,
                        created + position + 3.2,
                    ),
                )
            folder = store.run_dir(run_id)
            folder.mkdir(parents=True)
            log = EventLog(folder / "events.jsonl")
            log.append(
                Event(
                    1,
                    created,
                    STEP_STARTED,
                    "game-meta",
                    1,
                    {"tool": "game-meta", "version": "1.0.0"},
                )
            )
            log.append(
                Event(
                    2,
                    created,
                    OUTPUT,
                    "game-meta",
                    1,
                    {"stream": "stdout", "lines": [f"items: {index} rows, 5 columns"]},
                )
            )
            log.append(
                Event(
                    3,
                    created,
                    STEP_FINISHED,
                    "game-meta",
                    1,
                    {"status": "succeeded", "exit_code": 0, "duration": 3.2},
                )
            )
            log.append(Event(4, created, RUN_FINISHED, data={"status": status}))
            log.close()
    return store


def test_history_browser(fixed_store: Store, snap_compare: SnapCompare) -> None:
    assert snap_compare(HistoryApp(fixed_store, HistoryQuery()), terminal_size=(110, 20))


def test_run_details(fixed_store: Store, snap_compare: SnapCompare) -> None:
    async def open_second(pilot: Pilot[Any]) -> None:
        await pilot.press("down", "enter")
        await pilot.pause(0.3)

    assert snap_compare(
        HistoryApp(fixed_store, HistoryQuery()), run_before=open_second, terminal_size=(110, 24)
    )


def test_run_view(
    probe: Path, toolrun_home: Path, snap_compare: SnapCompare, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A finished two-step run with a ``needs`` edge; the wall clock stands still so the run id,
    timings and elapsed time are the same on every machine."""
    from toolrun.executors.local import LocalExecutor
    from toolrun.runs.engine import Engine, EngineSettings
    from toolrun.toolchains.model import parse_toolchain
    from toolrun.tools.installer import Installer
    from toolrun.tools.registry import FolderRegistry
    from toolrun.tools.resolver import ToolResolver
    from toolrun.tui.run_app import EngineRun, RunApp

    monkeypatch.setattr(time, "time", lambda: BASE)
    # The engine times attempts with the monotonic clock; asyncio needs the real one.
    frozen = types.SimpleNamespace(time=lambda: BASE, monotonic=lambda: 0.0)
    monkeypatch.setattr("toolrun.runs.steps.time", frozen)
    store = Store(toolrun_home)
    resolver = ToolResolver(Installer(toolrun_home / "tools"), [FolderRegistry("test", probe)])
    local = LocalExecutor(kill_grace=1.0)
    engine = Engine(store, resolver, EngineSettings(kill_grace=1.0), executor=local, blocking=local)
    text = (
        "toolchain:\n"
        "  - meta: {cmd: probe, args: [echo, 'items: 12 rows, 5 columns']}\n"
        "  - export: {cmd: probe, args: [stderr, 'skipped an empty table'], needs: [meta]}\n"
    )
    handle = engine.prepare(parse_toolchain(text, name="export-job", source="t.yaml"), {})
    app = RunApp(EngineRun(engine, handle), clock=lambda: BASE)

    async def until_finished(pilot: Pilot[Any]) -> None:
        for _ in range(400):
            if app.final is not None:
                break
            await pilot.pause(0.05)
        await pilot.pause(0.3)

    assert snap_compare(app, run_before=until_finished, terminal_size=(90, 20))
