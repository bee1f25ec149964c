"""Regenerate the screenshots in docs/ from the real TUI.

- docs/tui-run.svg: the run view, running the example toolchain (`export-job`).
- docs/tui-history.svg: the history browser over a small fixed store (fixed ids and times,
  shown in UTC), so the picture only changes when the UI does.
- docs/tui-run-details.svg: the details of one run of that store (a failed one).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BASE = 1_767_258_000.0  # 2026-01-01 09:00:00 UTC
# (toolchain, status, requester, params, minutes after BASE, seconds it took, the step that
# failed, timed out or was cancelled)
RUNS = [
    ("export-job", "succeeded", "ana", {"table": "d01", "push": True}, 0, 41.2, None),
    ("lint-tables", "succeeded", "ci-bot", {"table": "d01"}, 12, 6.4, None),
    ("export-job", "failed", "ana", {"table": "d02", "push": True}, 35, 73.9, "unity-export"),
    ("nightly", "succeeded", "ci-bot", {}, 60, 312.0, None),
    ("export-job", "cancelled", "tom", {"table": "d01", "push": False}, 94, 18.3, "unity-export"),
    ("lint-tables", "failed", "ci-bot", {"table": "d02"}, 121, 5.1, "game-meta"),
    ("export-job", "timed_out", "tom", {"table": "d03", "push": True}, 150, 600.0, "push"),
    ("export-job", "succeeded", "ana", {"table": "d02", "push": True}, 188, 44.7, None),
]
STEPS = {
    "export-job": [("game-meta", "game-meta", "1.0.0"), ("unity-export", "uexp", "0.1.0"),
                   ("push", "uexp", "0.1.0")],
    "lint-tables": [("game-meta", "game-meta", "1.0.0")],
    "nightly": [("game-meta", "game-meta", "1.0.0"), ("unity-export", "uexp", "0.2.0")],
}  # fmt: skip
TABLES = {"items": 6, "monsters": 4, "skills": 4}
EXIT_CODES = {"succeeded": 0, "failed": 1, "timed_out": 124, "cancelled": 130}
# How a step ended: (exit code, error, attempts)
ENDINGS = {
    "succeeded": (0, None, 1),
    "failed": (2, "exit 2", 2),
    "timed_out": (-15, "step timed out after 300s", 1),
    "cancelled": (-15, "cancelled", 1),
}


def event(
    kind: str, step: str | None = None, attempt: int | None = None, **data: object
) -> tuple[str, str | None, int | None, dict[str, object]]:
    return kind, step, attempt, data


def sha256(tool: str, version: str) -> str:
    return hashlib.sha256(f"{tool} {version}".encode()).hexdigest()


def fixed_store(home: Path) -> list[str]:
    """Write the runs above, with their steps and logs, straight into a store; their ids."""
    from toolrun.history.store import Store
    from toolrun.runs import events as ev
    from toolrun.runs.events import Event, EventLog

    store = Store(home)
    ids = []
    with store.connect(write=True) as db:
        for toolchain, status, requester, params, minutes, took, stopped in RUNS:
            created = BASE + minutes * 60
            run_id = time.strftime("%Y%m%d%H%M%S", time.gmtime(created)) + "-1"
            ids.append(run_id)
            db.execute(
                "INSERT INTO runs (id, stamp, seq, toolchain, status, origin, requester, params,"
                " created_at, started_at, finished_at, exit_code)"
                " VALUES (?, ?, 1, ?, ?, 'cli', ?, ?, ?, ?, ?, ?)",
                (
                    run_id,
                    run_id[:14],
                    toolchain,
                    status,
                    requester,
                    json.dumps(params),
                    created,
                    created,
                    created + took,
                    EXIT_CODES[status],
                ),
            )
            log: list[tuple[str, str | None, int | None, dict[str, object]]] = []
            steps = STEPS[toolchain]
            names = [step for step, _, _ in steps]
            log.append(event(ev.RUN_STARTED, run=run_id, toolchain=toolchain, steps=names))
            share = took / len(steps)
            table = params.get("table", "d01")
            ended = False
            for position, (step, tool, version) in enumerate(steps):
                if ended:
                    db.execute(
                        "INSERT INTO steps (run_id, step_id, position, tool, spec, status)"
                        " VALUES (?, ?, ?, ?, ?, 'skipped')",
                        (run_id, step, position, tool, tool),
                    )
                    log.append(
                        event(
                            ev.STEP_SKIPPED, step, status="skipped", reason="an earlier step failed"
                        )
                    )
                    continue
                ended = step == stopped
                step_status = status if ended else "succeeded"
                code, error, attempts = ENDINGS[step_status]
                start = created + position * share
                db.execute(
                    "INSERT INTO steps (run_id, step_id, position, tool, spec, version, sha256,"
                    " status, attempts, exit_code, started_at, finished_at, error)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        run_id,
                        step,
                        position,
                        tool,
                        tool,
                        version,
                        sha256(tool, version),
                        step_status,
                        attempts,
                        code,
                        start,
                        start + share,
                        error,
                    ),
                )
                for attempt in range(1, attempts + 1):
                    log.append(event(ev.STEP_STARTED, step, attempt, tool=tool, version=version))
                    lines, errors = step_output(step, table, step_status)
                    log.append(event(ev.OUTPUT, step, attempt, stream="stdout", lines=lines))
                    if errors:
                        log.append(event(ev.OUTPUT, step, attempt, stream="stderr", lines=errors))
                    log.append(
                        event(
                            ev.STEP_FINISHED,
                            step,
                            attempt,
                            status=step_status,
                            exit_code=code,
                            error=error,
                            duration=round(share / attempts, 1),
                        )
                    )
            log.append(event(ev.RUN_FINISHED, status=status))
            folder = store.run_dir(run_id)
            folder.mkdir(parents=True)
            events = EventLog(folder / "events.jsonl")
            for seq, (kind, step, attempt, data) in enumerate(log, start=1):
                events.append(Event(seq, created + seq, kind, step, attempt, data))
            events.close()
    store.close()
    return ids


def step_output(step: str, table: str, status: str) -> tuple[list[str], list[str]]:
    if step == "game-meta":
        rows = [f"{name}: {count} rows, 5 columns" for name, count in TABLES.items()]
        if status == "failed":
            return rows[:2], [f"error: {table}/skills.csv: no column 'cooldown'"]
        return [*rows, f"wrote meta.json: {len(TABLES)} tables"], []
    exported = [
        f"exported {name}: {count} rows -> exp/{name}.json" for name, count in TABLES.items()
    ]
    if status == "failed":
        return exported[:2], [
            f"error: {table}/skills.csv line 3: cooldown 'fast' is not a number",
            "export stopped: 1 error",
        ]
    if step == "push":
        return [f"pushed {name}.json" for name in TABLES], []
    return [*exported, "report: 3 tables, 1477 bytes in ./exp"], []


async def run_view(out: Path) -> None:
    from toolrun.cli.context import Context
    from toolrun.tui.run_app import EngineRun, RunApp

    ctx = Context.from_environment()
    handle = ctx.engine.prepare(ctx.load_toolchain("export-job"), {})
    app = RunApp(EngineRun(ctx.engine, handle))
    async with app.run_test(size=(110, 32)) as pilot:
        while app.final is None:
            await pilot.pause(0.05)
        await pilot.pause(0.3)
        app.save_screenshot(filename=out.name, path=str(out.parent))


async def history(home: Path, out: Path, details: Path, failed: str) -> None:
    from toolrun.history.store import HistoryQuery, Store
    from toolrun.tui.history_app import HistoryApp
    from toolrun.tui.history_table import HistoryTable

    app = HistoryApp(Store(home), HistoryQuery())
    async with app.run_test(size=(110, 14)) as pilot:
        await pilot.pause(0.3)
        app.save_screenshot(filename=out.name, path=str(out.parent))
        table = app.query_one(HistoryTable)
        table.move_cursor(row=[run.id for run in table.runs].index(failed))
        await pilot.pause(0.1)
        await pilot.resize_terminal(110, 30)
        await pilot.press("enter")
        await pilot.pause(0.5)
        app.save_screenshot(filename=details.name, path=str(details.parent))


def main() -> None:
    os.chdir(REPO)
    docs = REPO / "docs"
    with tempfile.TemporaryDirectory() as home:
        os.environ["TOOLRUN_HOME"] = home
        asyncio.run(run_view(docs / "tui-run.svg"))
    print("wrote docs/tui-run.svg", file=sys.stderr)
    os.environ["TZ"] = "UTC"  # the fixed store's times read the same everywhere
    time.tzset()
    with tempfile.TemporaryDirectory() as home:
        os.environ["TOOLRUN_HOME"] = home
        ids = fixed_store(Path(home))
        failed = ids[[run[1] for run in RUNS].index("failed")]
        asyncio.run(
            history(Path(home), docs / "tui-history.svg", docs / "tui-run-details.svg", failed)
        )
    print("wrote docs/tui-history.svg and docs/tui-run-details.svg", file=sys.stderr)


if __name__ == "__main__":
    main()
