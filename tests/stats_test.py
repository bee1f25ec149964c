"""``toolrun stats``: success rate and p50/p95 durations per toolchain, from real runs and from
a store too big to read into Python."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from conftest import Toolrun, WriteToolchain, write_tool

from toolrun.history.store import Store

EXITS = "import sys\nsys.exit(int(sys.argv[1]))\n"


def test_real_runs_counted_per_toolchain(
    toolrun: Toolrun, workdir: Path, toolchain: WriteToolchain
) -> None:
    write_tool(workdir / "registry", "exits", "1.0.0", script=EXITS)
    toolchain(
        "build",
        "params: {code: 0}\n"
        "toolchain:\n  - s: {cmd: exits, version: latest, args: ['${{ params.code }}']}\n",
    )
    toolchain("deploy", "toolchain:\n  - s: {cmd: exits, version: latest, args: ['0']}\n")
    for code in ("0", "0", "0", "1"):
        assert toolrun("run", "build", f"code={code}", "--plain").returncode == int(code)
    assert toolrun("run", "deploy", "--plain").returncode == 0

    table = toolrun("stats")
    assert table.returncode == 0, table.stderr
    header, build, deploy = table.stdout.splitlines()[:3]
    assert header.split() == [
        "TOOLCHAIN", "RUNS", "SUCCEEDED", "FAILED", "CANCELLED", "SUCCESS", "P50", "P95"
    ]  # fmt: skip
    assert build.split()[:6] == ["build", "4", "3", "1", "0", "75%"]
    assert deploy.split()[:6] == ["deploy", "1", "1", "0", "0", "100%"]

    data = json.loads(toolrun("stats", "build", "--json").stdout)
    [only] = data["toolchains"]
    assert only["toolchain"] == "build" and only["success_rate"] == 0.75
    assert 0 < only["p50"] <= only["p95"] < 60
    assert abs(data["until"] - data["since"] - 30 * 86400) < 5  # the default window

    future = toolrun("stats", "--since", "2099-01-01")
    assert future.returncode == 0 and future.stdout.startswith("no runs since 209")
    bad = toolrun("stats", "--since", "last tuesday")
    assert bad.returncode == 2 and "--since takes" in bad.stderr
    remote = toolrun("--remote", "http://127.0.0.1:9", "stats")
    assert remote.returncode == 2 and "this machine's store" in remote.stderr


def fill(
    home: Path,
    durations: Mapping[str, Sequence[tuple[str, float | None]]],
    at: float,
    *,
    text_index: bool = True,
) -> None:
    """Runs straight into the store's tables: (status, seconds) per toolchain. Without
    ``text_index`` the free-text index (no part of stats) is not kept: ten times faster."""
    store = Store(home)
    with store.connect():  # the schema
        pass
    store.close()
    rows: list[tuple[Any, ...]] = []
    for toolchain, runs in durations.items():
        for status, seconds in runs:
            seq = len(rows) + 1
            started = at + seq
            finished = None if seconds is None else started + seconds
            rows.append(
                (f"20250101000000-{seq}", "20250101000000", seq, toolchain, status, at + seq,
                 started, finished)
            )  # fmt: skip
    db = sqlite3.connect(home / "history.db")
    if not text_index:
        db.execute("DROP TRIGGER runs_text_insert")
    with db:
        db.executemany(
            "INSERT INTO runs (id, stamp, seq, toolchain, status, created_at, started_at,"
            " finished_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
    db.close()


def test_percentiles_are_nearest_rank_over_ended_runs(toolrun: Toolrun, toolrun_home: Path) -> None:
    now = time.time() - 3600
    twenty = [("succeeded", float(s)) for s in range(20, 0, -1)]
    fill(
        toolrun_home,
        {
            "twenty": twenty,
            "mixed": [
                ("failed", 4.0),
                ("timed_out", 8.0),
                ("cancelled", 2.0),
                ("running", None),  # counted, but has no duration yet
            ],
        },
        now,
    )
    data = json.loads(toolrun("stats", "--json").stdout)
    by_name = {t["toolchain"]: t for t in data["toolchains"]}
    assert by_name["twenty"]["p50"] == 10.0 and by_name["twenty"]["p95"] == 19.0
    mixed = by_name["mixed"]
    assert (mixed["runs"], mixed["failed"], mixed["cancelled"], mixed["active"]) == (4, 2, 1, 1)
    assert mixed["success_rate"] == 0.0
    assert (mixed["p50"], mixed["p95"]) == (4.0, 8.0)  # of 2, 4 and 8 seconds
    text = toolrun("stats", "mixed").stdout
    assert "1 still going" in text and "4.0s" in text and "8.0s" in text


def test_a_big_store_answers_quickly(toolrun: Toolrun, toolrun_home: Path) -> None:
    now = time.time() - 7 * 86400
    runs = {
        f"chain-{n}": [("succeeded" if i % 10 else "failed", float(i % 97)) for i in range(5_000)]
        for n in range(40)
    }  # 200,000 runs
    fill(toolrun_home, runs, now, text_index=False)
    started = time.monotonic()
    result = toolrun("stats", "--json", "--since", "8d")
    took = time.monotonic() - started
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert len(data["toolchains"]) == 40
    assert all(t["success_rate"] == 0.9 for t in data["toolchains"])
    assert took < 10, f"stats over 200,000 runs took {took:.1f}s"
