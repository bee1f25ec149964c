"""History at scale: a store of 1,000,000 runs, queried and pruned (issue 3).

Targets: `toolrun history --status failed --limit 50 --json` under 150 ms wall (median of 10);
`toolrun history prune` of 100,000 runs under 30 s. Prune hands big batches of folders to a
background deleter; the time until their disk space is free is reported beside it.

The store is generated straight into SQLite with the schema toolrun itself creates (a run
folder is made for the 100,000 runs that get pruned, so prune deletes real folders too).
Generating takes a minute or two; pass a folder to keep and reuse it: history.py /tmp/big.
"""

from __future__ import annotations

import json
import random
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import TOOLRUN, environment, machine, median_ms, verdict, wall

RUNS = 1_000_000
PRUNED = 100_000
STATUSES = ["succeeded"] * 80 + ["failed"] * 15 + ["cancelled"] * 3 + ["timed_out"] * 2


def generate(home: Path) -> None:
    from toolrun.history.store import Store

    store = Store(home)
    with store.connect():
        pass  # creates the schema
    rng = random.Random(1)
    start = time.time() - RUNS * 30
    db = sqlite3.connect(home / "history.db")
    db.execute("PRAGMA synchronous = OFF")
    batch_runs, batch_steps = [], []
    for index in range(RUNS):
        created = start + index * 30
        stamp = time.strftime("%Y%m%d%H%M%S", time.gmtime(created))
        run_id = f"{stamp}-1"
        status = rng.choice(STATUSES)
        toolchain = rng.choice(["export-job", "nightly", "push-cdn", "lint-tables"])
        batch_runs.append(
            (
                run_id,
                stamp,
                1,
                toolchain,
                status,
                "cli",
                "bench",
                json.dumps({"table": "d01"}),
                created,
                created,
                created + 12,
                0 if status == "succeeded" else 1,
                4096,
            )
        )
        batch_steps.append((run_id, "game-meta", 0, "game-meta", "game-meta", "1.0.0", status))
        if len(batch_runs) == 50_000:
            _flush(db, batch_runs, batch_steps)
    _flush(db, batch_runs, batch_steps)
    db.close()
    oldest = (
        sqlite3.connect(home / "history.db")
        .execute("SELECT id FROM runs ORDER BY created_at LIMIT ?", (PRUNED,))
        .fetchall()
    )
    for (run_id,) in oldest:
        folder = home / "runs" / run_id / "work"
        folder.mkdir(parents=True)
        (folder.parent / "events.jsonl").write_text('{"seq":1,"t":0,"kind":"run_started"}\n')


def _flush(db: sqlite3.Connection, runs: list[tuple], steps: list[tuple]) -> None:  # type: ignore[type-arg]
    db.executemany(
        "INSERT INTO runs (id, stamp, seq, toolchain, status, origin, requester, params,"
        " created_at, started_at, finished_at, exit_code, size_bytes)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        runs,
    )
    db.executemany(
        "INSERT INTO steps (run_id, step_id, position, tool, spec, version, status)"
        " VALUES (?, ?, ?, ?, ?, ?, ?)",
        steps,
    )
    db.commit()
    runs.clear()
    steps.clear()


def main() -> int:
    keep = Path(sys.argv[1]) if len(sys.argv) > 1 else None
    with tempfile.TemporaryDirectory() as scratch:
        home = keep or Path(scratch) / "home"
        if not (home / "history.db").exists():
            started = time.perf_counter()
            generate(home)
            print(f"generated {RUNS:,} runs in {time.perf_counter() - started:.0f} s")
        env = environment(home)
        cwd = Path(scratch)
        query = [TOOLRUN, "history", "--status", "failed", "--limit", "50", "--json"]
        result = subprocess.run(query, env=env, cwd=cwd, capture_output=True, text=True)
        assert len(json.loads(result.stdout)) == 50, result.stderr
        samples = [wall(query, env=env, cwd=cwd) for _ in range(10)]
        started = time.perf_counter()
        prune = subprocess.run(
            [TOOLRUN, "history", "prune", "--keep", str(RUNS - PRUNED)],
            env=env,
            cwd=cwd,
            capture_output=True,
            text=True,
        )
        prune_seconds = time.perf_counter() - started
        assert prune.returncode == 0, prune.stderr
        trash = home / "runs" / ".trash"
        while trash.exists() and any(trash.iterdir()):
            time.sleep(0.1)
        freed_seconds = time.perf_counter() - started
    print(f"machine: {machine()}")
    query_ms = median_ms(samples)
    print(
        f"history --status failed --limit 50 --json   {query_ms:7.1f} ms "
        f"(target < 150: {verdict(query_ms < 150)})"
    )
    print(
        f"history prune of {PRUNED:,} runs            {prune_seconds:7.1f} s  "
        f"(target < 30: {verdict(prune_seconds < 30)}); {prune.stdout.strip()}"
    )
    print(f"  ... and until the background delete freed the folders: {freed_seconds:7.1f} s")
    return 0 if query_ms < 150 and prune_seconds < 30 else 1


if __name__ == "__main__":
    sys.exit(main())
