"""The terminal UI under load (issue 4).

1. The run view while a step writes 50,000 lines a second for 10 seconds: a key press shows
   its effect within 200 ms throughout (measured from sending the key to its action running),
   every line is in the stored log, RSS under 150 MB.
2. The history browser on a store of 1,000,000 runs: first screen under 1 s, a filter change
   under 300 ms. Pass a folder for the store (`tui.py /tmp/tui-home`): it is generated there
   the first time (about a minute) and reused after.
3. Opening a 1 GB stored log: first screen under 1 s, memory flat.
"""

from __future__ import annotations

import asyncio
import json
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

from common import machine, verdict, write_tool

RATE, SECONDS = 50_000, 10
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


def rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def run_view(root: Path) -> tuple[list[float], int, float]:
    from toolrun.engine import Engine
    from toolrun.installer import Installer
    from toolrun.registry import FolderRegistry
    from toolrun.resolver import ToolResolver
    from toolrun.store import Store
    from toolrun.toolchain import parse_toolchain
    from toolrun.tui.run_app import RunApp

    write_tool(root / "registry", "flood", "1.0.0", FLOOD)
    store = Store(root / "home")
    resolver = ToolResolver(
        Installer(root / "home" / "tools"), [FolderRegistry("bench", root / "registry")]
    )
    engine = Engine(store, resolver)
    toolchain = parse_toolchain("toolchain:\n  - flood: {cmd: flood}\n", name="f", source="f")
    handle = engine.prepare(toolchain, {})
    app = RunApp(engine, handle)
    latencies: list[float] = []
    handled: list[float] = []
    follow = app.action_follow

    def timed_follow() -> None:
        follow()
        handled.append(time.perf_counter())

    app.action_follow = timed_follow  # type: ignore[method-assign]
    async with app.run_test(size=(120, 40)) as pilot:
        while app.final is None:
            started = time.perf_counter()
            await pilot.press("f")
            if handled:
                latencies.append(handled.pop() - started)
            await pilot.pause(0.25)
    stored = sum(
        len(json.loads(line).get("lines", []))
        for line in (store.run_dir(handle.id) / "events.jsonl").open()
    )
    return latencies, stored, rss_mib()


async def history_browser(home: Path) -> tuple[float, float]:
    from toolrun.store import HistoryQuery, Store
    from toolrun.tui.history_app import Filter, HistoryApp
    from toolrun.tui.history_table import HistoryTable

    started = time.perf_counter()
    app = HistoryApp(Store(home), HistoryQuery())
    async with app.run_test(size=(120, 40)) as pilot:
        table = app.query_one(HistoryTable)
        while not table.runs:
            await pilot.pause(0.01)
        first = time.perf_counter() - started
        started = time.perf_counter()
        app.apply_filter(Filter(status="failed", toolchain="nightly"))
        await pilot.pause(0)
        change = time.perf_counter() - started
        started = time.perf_counter()
        app.apply_filter(Filter(text="no such text anywhere"))
        await pilot.pause(0)
        print(
            f"  (a free-text filter, matching nothing, scans every row: "
            f"{(time.perf_counter() - started) * 1000:.0f} ms)"
        )
    return first, change


def big_log(path: Path, size: int) -> None:
    from toolrun.events import OUTPUT, Event

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


async def log_view(path: Path) -> tuple[float, float, float]:
    from textual.app import App, ComposeResult

    from toolrun.tui.log_view import LogView

    class Viewer(App[None]):
        def compose(self) -> ComposeResult:
            yield LogView(path, prefix=False)

    before = rss_mib()
    started = time.perf_counter()
    app = Viewer()
    async with app.run_test(size=(120, 40)) as pilot:
        view = app.query_one(LogView)
        while view.index.line_count < 40:
            await pilot.pause(0.005)
        await pilot.pause(0)
        first = time.perf_counter() - started
        assert view.line(0).startswith("line      0")
    return first, rss_mib() - before, view.index.scanned_bytes / path.stat().st_size


def main() -> int:
    print(f"machine: {machine()}")
    ok = True
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        latencies, stored, rss = asyncio.run(run_view(root))
        worst = max(latencies) * 1000
        ok = ok and worst < 200 and stored == RATE * SECONDS and rss < 150
        print(
            f"run view, {RATE:,} lines/s for {SECONDS} s: key press median "
            f"{statistics.median(latencies) * 1000:.0f} ms, worst {worst:.0f} ms "
            f"(< 200: {verdict(worst < 200)}); {stored:,} lines stored "
            f"({verdict(stored == RATE * SECONDS)}); peak RSS {rss:.0f} MiB "
            f"(< 150: {verdict(rss < 150)})"
        )
        if len(sys.argv) > 1:
            home = Path(sys.argv[1])
            if not (home / "history.db").exists():
                from history import generate

                generate(home)
            first, change = asyncio.run(history_browser(home))
            ok = ok and first < 1 and change < 0.3
            print(
                f"history browser: first screen {first * 1000:.0f} ms (< 1000: "
                f"{verdict(first < 1)}), filter change {change * 1000:.0f} ms "
                f"(< 300: {verdict(change < 0.3)})"
            )
        path = root / "big.jsonl"
        big_log(path, 1024**3)
        first, grew, share = asyncio.run(log_view(path))
        ok = ok and first < 1
        print(
            f"1 GB log: first screen {first * 1000:.0f} ms (< 1000: {verdict(first < 1)}); "
            f"RSS grew {grew:.0f} MiB while {share:.1%} of it was indexed"
        )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
