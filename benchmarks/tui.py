"""The terminal UI under load (issue 4).

1. The run view while a step writes 50,000 lines a second for 10 seconds: a key press shows
   its effect within 200 ms throughout, every line is in the stored log, RSS under 150 MB.
   A key's latency is measured from sending it to its action running, and to the first screen
   update after that (the frame that shows the effect; headless, so not written to a terminal).
2. The history browser on a store of 1,000,000 runs: first screen under 1 s, a filter change
   under 300 ms. A filter is typed into the `/` box as a person would; its time runs from the
   enter key to the first screen update after the table was refilled (each filter three
   times, in turn with the others; the median is reported). The store is generated in a
   temporary folder (about a minute), or pass a folder to keep it (`tui.py /tmp/tui-home`):
   it is generated there the first time and reused after; one holding a store of another size
   is refused.
3. Opening a 1 GB stored log: first screen under 1 s, memory flat (resident memory before the
   view, at its first screen and once the whole log is indexed).

Everything runs in one process, so textual is imported once up front; what a cold start adds
(importing textual and the browser) is measured separately in a subprocess and printed beside.
"""

from __future__ import annotations

import asyncio
import bisect
import json
import os
import resource
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from common import PYTHON, environment, machine, verdict, wall, write_tool

RATE, SECONDS = 50_000, 10
KEY_INTERVAL = 0.2  # a key press every 200 ms during the flood
REPEATS = 3  # each filter is applied this many times (in turn with the others)
RUNS = 1_000_000
FLOOD = f"""\
import sys, time
out = sys.stdout
start = time.monotonic()
sent = 0
while sent < {RATE * SECONDS}:
    due = int((time.monotonic() - start) * {RATE}) - sent
    if due <= 0:
        time.sleep(0.005)
        continue
    batch = min(due, {RATE * SECONDS} - sent)
    out.write("".join(f"flood line {{sent + i}} of the benchmark\\n" for i in range(batch)))
    out.flush()
    sent += batch
"""


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def rss_mib() -> float:
    """Resident memory now (the peak cannot show whether a later stage grew)."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return peak_rss_mib()
    return pages * os.sysconf("SC_PAGE_SIZE") / 1024 / 1024


def stamp_frames(app: Any, probe: Callable[[], bool] = lambda: True) -> list[float]:
    """Times of the app's screen updates (only those for which ``probe()`` holds).

    Headless, Textual still composes every frame; only writing it to a terminal is skipped.
    """
    stamps: list[float] = []
    display = app._display

    def stamped(screen: Any, renderable: Any) -> None:
        display(screen, renderable)
        if renderable is not None and probe():
            stamps.append(time.perf_counter())

    app._display = stamped
    return stamps


def after(stamps: list[float], moment: float) -> float | None:
    """The first stamp after ``moment``."""
    index = bisect.bisect_right(stamps, moment)
    return stamps[index] if index < len(stamps) else None


async def run_view(root: Path) -> dict[str, Any]:
    from textual import events

    from toolrun.executors.local import LocalExecutor
    from toolrun.history.store import Store
    from toolrun.runs.engine import Engine
    from toolrun.toolchains.model import parse_toolchain
    from toolrun.tools.installer import Installer
    from toolrun.tools.registry import FolderRegistry
    from toolrun.tools.resolver import ToolResolver
    from toolrun.tui.run_app import EngineRun, RunApp

    write_tool(root / "registry", "flood", "1.0.0", FLOOD)
    store = Store(root / "home")
    resolver = ToolResolver(
        Installer(root / "home" / "tools"), [FolderRegistry("bench", root / "registry")]
    )
    engine = Engine(store, resolver, executor=LocalExecutor())
    toolchain = parse_toolchain("toolchain:\n  - flood: {cmd: flood}\n", name="f", source="f")
    handle = engine.prepare(toolchain, {})
    app = RunApp(EngineRun(engine, handle))
    sent: list[float] = []
    handled: list[float] = []
    follow = app.action_follow

    def timed_follow() -> None:
        follow()
        handled.append(time.perf_counter())

    app.action_follow = timed_follow  # type: ignore[method-assign]
    frames = stamp_frames(app)
    async with app.run_test(size=(120, 40)) as pilot:
        driver = app._driver
        assert driver is not None
        while app.final is None:
            # As a terminal sends it. Pilot.press() would wait for the app to go idle, which
            # it never does under the flood, so only a few keys would be sent.
            sent.append(time.perf_counter())
            driver.send_message(events.Key("f", "f"))
            await asyncio.sleep(KEY_INTERVAL)
        await pilot.pause(0.1)
    # Each press runs the action once, in order: pair them by position, not by which
    # iteration happened to see the action (it may run after press() has returned).
    pairs = list(zip(sent, handled, strict=False))
    action = [done - start for start, done in pairs]
    effect = [frame - start for start, done in pairs if (frame := after(frames, done))]
    stored = sum(
        len(json.loads(line).get("lines", []))
        for line in (store.run_dir(handle.id) / "events.jsonl").open()
    )
    store.close()
    return {
        "presses": len(sent),
        "handled": len(handled),
        "action_ms": [round(x * 1000, 1) for x in action],
        "effect_ms": [round(x * 1000, 1) for x in effect],
        "stored": stored,
        "peak_rss_mib": round(peak_rss_mib(), 1),
    }


def check_store(home: Path) -> int:
    db = sqlite3.connect(f"file:{home / 'history.db'}?mode=ro", uri=True)
    try:
        return int(db.execute("SELECT COUNT(*) FROM runs").fetchone()[0])
    finally:
        db.close()


async def history_browser(home: Path) -> dict[str, Any]:
    from textual.widgets import Input

    from toolrun.history.store import HistoryQuery, Store
    from toolrun.tui.history_app import Filter, HistoryApp
    from toolrun.tui.history_table import PAGE, HistoryTable

    store = Store(home)
    with store.connect() as db:  # a day in the middle of the history: about 2,900 runs
        (middle,) = db.execute(
            "SELECT id FROM runs ORDER BY created_at LIMIT 1 OFFSET ?", (RUNS // 2,)
        ).fetchone()
    day = middle[:8]
    store.close()

    started = time.perf_counter()
    app = HistoryApp(Store(home), HistoryQuery())
    applied: list[tuple[float, Filter, int]] = []
    apply_filter = app.apply_filter

    def timed_apply(wanted: Filter) -> None:
        apply_filter(wanted)
        applied.append((time.perf_counter(), wanted, len(app.query_one(HistoryTable).runs)))

    app.apply_filter = timed_apply  # type: ignore[method-assign]
    frames = stamp_frames(app, lambda: bool(applied))
    filters = {
        "status+toolchain": "failed nightly",
        "text, every run matches": "d01",
        f"text, one day ({day})": day,
        "text, no run matches": "no such text anywhere",
    }
    changes: dict[str, Any] = {}
    async with app.run_test(size=(120, 40)) as pilot:
        table = app.query_one(HistoryTable)
        while not frames:
            await pilot.pause(0.01)
        first = frames[0] - started
        assert table.runs, "no runs on the first screen"
        box = app.query_one("#filter", Input)
        for label, text in [item for _ in range(REPEATS) for item in filters.items()]:
            box.value = ""  # what the last filter left there
            await pilot.press("slash", *text)
            count = len(applied)
            pressed = time.perf_counter()
            await pilot.press("enter")
            while len(applied) == count:
                await pilot.pause(0.01)
            done, wanted, rows = applied[-1]
            await pilot.pause(0)
            frame = after(frames, done)
            assert frame is not None
            change = changes.setdefault(
                label, {"filter": {k: v for k, v in vars(wanted).items() if v}, "samples": []}
            )
            change["samples"].append(round((frame - pressed) * 1000, 1))
            change["rows"] = rows
    store = Store(home)
    for change in changes.values():
        change["ms"] = statistics.median(change["samples"])
        # The store's query alone, for the share of the UI (clearing and filling the table,
        # laying out and rendering the screen) in the figure above.
        query = HistoryQuery(**change["filter"], limit=PAGE)
        samples = []
        for _ in range(REPEATS):
            started = time.perf_counter()
            store.list_runs(query)
            samples.append(time.perf_counter() - started)
        change["query_ms"] = round(statistics.median(samples) * 1000, 1)
    store.close()
    return {"first_ms": round(first * 1000, 1), "filters": changes}


def big_log(path: Path, size: int) -> None:
    from toolrun.runs.events import OUTPUT, Event

    lines = [
        f"line {i:>6} of a large stored log, about eighty bytes long......" for i in range(1000)
    ]
    with path.open("wb") as file:
        seq, written = 0, 0
        while written < size:
            seq += 1
            data = Event(
                seq, 0.0, OUTPUT, "big", 1, {"stream": "stdout", "lines": lines}
            ).to_bytes()
            file.write(data + b"\n")
            written += len(data) + 1


async def log_view(path: Path) -> dict[str, Any]:
    from textual.app import App, ComposeResult

    from toolrun.tui.log_view import LogView

    class Viewer(App[None]):
        def compose(self) -> ComposeResult:
            yield LogView(path, prefix=False)

    before = rss_mib()
    started = time.perf_counter()
    app = Viewer()

    def filled() -> bool:
        try:
            return app.query_one(LogView).index.line_count >= 40
        except Exception:  # not mounted yet
            return False

    frames = stamp_frames(app, filled)
    async with app.run_test(size=(120, 40)) as pilot:
        view = app.query_one(LogView)
        while not frames:
            await pilot.pause(0.005)
        first = frames[0] - started
        share = view.index.scanned_bytes / path.stat().st_size
        at_first = rss_mib()
        assert view.line(0).startswith("line      0")
        deadline = time.perf_counter() + 300
        while not view.done and time.perf_counter() < deadline:
            await pilot.pause(0.5)
        indexed = time.perf_counter() - started
        await pilot.press("end")
        await pilot.pause(0.2)
        last = view.line(view.index.line_count - 1)
        assert last.startswith("line    999"), last
        at_end = rss_mib()
        return {
            "first_ms": round(first * 1000, 1),
            "indexed_at_first": round(share, 4),
            "rss_before_mib": round(before, 1),
            "rss_first_mib": round(at_first, 1),
            "rss_indexed_mib": round(at_end, 1),
            "fully_indexed": view.done,
            "index_seconds": round(indexed, 1),
            "lines": view.index.line_count,
            "index_kib": round(view.index.memory_bytes() / 1024, 1),
        }


def cold_import_ms() -> float:
    """What a cold `toolrun history` adds before the first screen: textual's import."""
    env = environment(Path(tempfile.gettempdir()))
    code = "import toolrun.tui.history_app"
    wall([PYTHON, "-c", code], env=env)  # bytecode cached
    base = statistics.median(wall([PYTHON, "-c", "pass"], env=env) for _ in range(5))
    tui = statistics.median(wall([PYTHON, "-c", code], env=env) for _ in range(5))
    return (tui - base) * 1000


def main() -> int:
    print(f"machine: {machine()}")
    figures: dict[str, Any] = {}
    ok = True
    home = Path(sys.argv[1]) if len(sys.argv) > 1 else None
    if home is not None and (home / "history.db").exists() and check_store(home) != RUNS:
        print(f"{home} holds {check_store(home):,} runs, not {RUNS:,}: delete it first")
        return 2
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        run = figures["run_view"] = asyncio.run(run_view(root))
        worst = max(run["effect_ms"])
        lines_ok = run["stored"] == RATE * SECONDS
        ok = ok and worst < 200 and lines_ok and run["peak_rss_mib"] < 150
        print(
            f"run view, {RATE:,} lines/s for {SECONDS} s, {run['presses']} presses of f "
            f"({run['handled']} handled):\n"
            f"  key to action: median {statistics.median(run['action_ms']):.0f} ms, "
            f"worst {max(run['action_ms']):.0f} ms\n"
            f"  key to the frame showing it: median {statistics.median(run['effect_ms']):.0f} ms, "
            f"worst {worst:.0f} ms (< 200: {verdict(worst < 200)})\n"
            f"  {run['stored']:,} lines stored ({verdict(lines_ok)}); "
            f"peak RSS {run['peak_rss_mib']:.0f} MiB (< 150: {verdict(run['peak_rss_mib'] < 150)})"
        )
        home = home or root / "history-home"
        if not (home / "history.db").exists():
            from history import generate

            started = time.perf_counter()
            generate(home)
            print(f"generated {RUNS:,} runs in {time.perf_counter() - started:.0f} s")
        assert check_store(home) == RUNS
        browser = figures["history"] = asyncio.run(history_browser(home))
        first = browser["first_ms"]
        ok = ok and first < 1000
        print(f"history browser on {RUNS:,} runs:")
        print(f"  first screen {first:.0f} ms (< 1000: {verdict(first < 1000)})")
        for label, change in browser["filters"].items():
            ok = ok and change["ms"] < 300
            print(
                f"  filter {label}: median {change['ms']:.0f} ms of {REPEATS} (< 300: "
                f"{verdict(change['ms'] < 300)}), worst {max(change['samples']):.0f} ms, "
                f"the query alone {change['query_ms']:.0f} ms; "
                f"{change['rows']} rows on screen, {change['filter']}"
            )
        imports = figures["cold_import_ms"] = round(cold_import_ms(), 1)
        print(f"  a cold start adds importing textual and the browser: {imports:.0f} ms")
        path = root / "big.jsonl"
        big_log(path, 1024**3)
        log = figures["log_view"] = asyncio.run(log_view(path))
        grew = log["rss_indexed_mib"] - log["rss_before_mib"]
        ok = ok and log["first_ms"] < 1000
        print(
            f"1 GB log ({log['lines']:,} lines): first screen {log['first_ms']:.0f} ms "
            f"(< 1000: {verdict(log['first_ms'] < 1000)}) with {log['indexed_at_first']:.1%} "
            f"indexed\n  RSS {log['rss_before_mib']:.0f} MiB before, "
            f"{log['rss_first_mib']:.0f} MiB at the first screen, "
            f"{log['rss_indexed_mib']:.0f} MiB once all of it was indexed "
            f"({log['index_seconds']:.0f} s) and shown at its end: {grew:+.1f} MiB; "
            f"the index holds {log['index_kib']:.0f} KiB"
        )
    print("figures: " + json.dumps(figures))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
