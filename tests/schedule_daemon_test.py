"""Schedules fired by real daemon subprocesses: on time, once across two daemons on one store,
by their overlap policy, caught up after downtime, paused and resumed from the CLI."""

from __future__ import annotations

import itertools
import time
from pathlib import Path

from conftest import StartDaemon, Toolrun, WriteToolchain

from toolrun.automation.ledger import Fire, Ledger
from toolrun.history.store import HistoryQuery, RunRecord, Store


def ledger(home: Path) -> Ledger:
    return Ledger(Store(home))


def schedule_runs(home: Path, name: str) -> list[RunRecord]:
    store = Store(home)
    try:
        runs = store.list_runs(HistoryQuery(limit=1000))
    finally:
        store.close()
    return sorted(
        (r for r in runs if r.origin == "schedule" and r.requester == name),
        key=lambda r: r.created_at,
    )


def fires(home: Path, name: str) -> list[Fire]:
    book = ledger(home)
    try:
        return book.fires(name)
    finally:
        book.store.close()


def wait_for(predicate: object, seconds: float = 15) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.05)
    raise AssertionError("timed out waiting")


def test_every_2s_fires_on_time_and_two_daemons_on_one_store_fire_each_time_once(
    daemon: StartDaemon, toolchain: WriteToolchain, toolrun_home: Path
) -> None:
    toolchain("tick", "schedule: '@every 2s'\ntoolchain:\n  - a: {cmd: probe, args: [echo, hi]}\n")
    first, second = daemon(), daemon()
    watching_from = time.time()
    time.sleep(9)
    watching_until = time.time()
    first.stop()
    second.stop()
    logged = [e for d in (first, second) for e in d.events("schedule_fired")]
    dues = sorted(float(e["due"]) for e in logged)  # type: ignore[arg-type]
    assert len(dues) == len(set(dues)), "a time was fired twice"
    # Every 2-second mark while both watched was fired, by one daemon or the other.
    expected = [t for t in range(int(watching_from) + 1, int(watching_until)) if t % 2 == 0]
    assert set(expected) <= set(dues), (expected, dues)
    assert 4 <= len(dues) <= 6
    for event in logged:
        assert float(event["ts"]) - float(event["due"]) < 1.0  # type: ignore[arg-type]
    runs = schedule_runs(toolrun_home, "tick")
    assert len(dues) <= len(runs) <= len(dues) + 1
    assert {r.status for r in runs} <= {"succeeded", "cancelled"}
    # A fire claimed as a daemon was stopped may be in the store without its log line.
    recorded = sorted(f.due for f in fires(toolrun_home, "tick"))
    assert set(dues) <= set(recorded)
    assert all(due >= watching_until - 2 for due in set(recorded) - set(dues))


def test_overlap_skip_starts_nothing_while_the_last_run_goes(
    daemon: StartDaemon, toolchain: WriteToolchain, toolrun_home: Path
) -> None:
    toolchain(
        "slow",
        "schedule: '@every 1s'\ntoolchain:\n  - a: {cmd: probe, args: [sleep, '2.5']}\n",
    )
    process = daemon()
    wait_for(lambda: len(process.events("schedule_skipped")) >= 3)
    process.stop()
    runs = schedule_runs(toolrun_home, "slow")
    for before, after in itertools.pairwise(runs):
        assert before.finished_at is not None and after.started_at is not None
        assert after.started_at >= before.finished_at, "two runs of one schedule overlapped"
    skipped = [f for f in fires(toolrun_home, "slow") if f.outcome == "skipped"]
    assert skipped and all(f.detail and "is still going" in f.detail for f in skipped)


def test_overlap_queue_starts_the_next_as_the_last_ends(
    daemon: StartDaemon, toolchain: WriteToolchain, toolrun_home: Path
) -> None:
    toolchain(
        "queued",
        "schedule: {cron: '@every 1s', overlap: queue}\n"
        "toolchain:\n  - a: {cmd: probe, args: [sleep, '1.6']}\n",
    )
    process = daemon()
    wait_for(lambda: len([r for r in schedule_runs(toolrun_home, "queued") if r.finished_at]) >= 3)
    process.stop()
    runs = [r for r in schedule_runs(toolrun_home, "queued") if r.status == "succeeded"]
    for before, after in itertools.pairwise(runs):
        assert before.finished_at is not None and after.started_at is not None
        gap = after.started_at - before.finished_at
        assert 0 <= gap < 0.8, f"the queued fire waited {gap:.2f}s after the last run ended"
    outcomes = [f.detail for f in fires(toolrun_home, "queued") if f.outcome == "skipped"]
    assert "a fire is already waiting for the last run to end" in outcomes


def test_overlap_cancel_previous_cancels_the_run_still_going(
    daemon: StartDaemon, toolchain: WriteToolchain, toolrun_home: Path
) -> None:
    toolchain(
        "fresh",
        "schedule: {cron: '@every 2s', overlap: cancel_previous}\n"
        "toolchain:\n  - a: {cmd: probe, args: [sleep, '30']}\n",
    )
    process = daemon()
    wait_for(lambda: len(process.events("schedule_fired")) >= 3)
    process.stop()
    runs = schedule_runs(toolrun_home, "fresh")
    assert len(runs) >= 3
    assert {r.status for r in runs[:-1]} == {"cancelled"}
    for before, after in itertools.pairwise(runs):
        assert before.finished_at is not None and after.started_at is not None
        assert after.started_at >= before.finished_at


def test_catch_up_fires_once_for_the_times_missed_while_no_daemon_ran(
    daemon: StartDaemon, toolchain: WriteToolchain, toolrun_home: Path
) -> None:
    toolchain(
        "caught",
        "schedule: {cron: '@every 2s', catch_up: 1h}\n"
        "toolchain:\n  - a: {cmd: probe, args: [echo, hi]}\n",
    )
    toolchain(
        "missed",
        "schedule: '@every 2s'\ntoolchain:\n  - a: {cmd: probe, args: [echo, hi]}\n",
    )
    process = daemon()
    wait_for(lambda: {e["name"] for e in process.events("schedule_fired")} >= {"caught", "missed"})
    process.stop()
    time.sleep(5)  # two or three times go by with no daemon
    started = time.time()
    again = daemon()
    wait_for(lambda: any(e.get("caught_up") for e in again.events("schedule_fired")))
    time.sleep(0.5)
    again.stop()
    caught_up = [e for e in again.events("schedule_fired") if e.get("caught_up")]
    assert [e["name"] for e in caught_up] == ["caught"]  # once, and only where asked for
    due = float(caught_up[0]["due"])  # type: ignore[arg-type]
    fired = float(caught_up[0]["ts"])  # type: ignore[arg-type]
    # The latest time missed before this daemon looked (its start takes a moment of its own).
    assert started - 2 <= due <= fired, "the latest missed time is the one caught up"
    assert float(caught_up[0]["ts"]) - started < 2.0  # type: ignore[arg-type]


def test_a_paused_schedule_fires_nothing_until_resumed(
    daemon: StartDaemon, toolchain: WriteToolchain, toolrun: Toolrun, toolrun_home: Path
) -> None:
    toolchain("tick", "schedule: '@every 1s'\ntoolchain:\n  - a: {cmd: probe, args: [echo, hi]}\n")
    paused = toolrun("schedule", "pause", "tick")
    assert paused.returncode == 0, paused.stderr
    process = daemon()
    wait_for(lambda: any(f.outcome == "paused" for f in fires(toolrun_home, "tick")))
    assert schedule_runs(toolrun_home, "tick") == []
    listed = toolrun("schedule", "list")
    assert "paused" in listed.stdout
    assert toolrun("schedule", "resume", "tick").returncode == 0
    wait_for(lambda: len(schedule_runs(toolrun_home, "tick")) >= 1)
    process.stop()


def test_a_broken_schedule_is_logged_with_its_place_and_the_others_fire(
    daemon: StartDaemon, toolchain: WriteToolchain, toolrun_home: Path
) -> None:
    bad = toolchain("bad", "schedule: '0 25 * * *'\ntoolchain:\n  - a: {cmd: probe}\n")
    toolchain("good", "schedule: '@every 1s'\ntoolchain:\n  - a: {cmd: probe, args: [echo]}\n")
    process = daemon()
    problem = process.wait_for("schedule_problem")
    assert problem["problem"] == (
        f"{bad}:1:11: schedule: '0 25 * * *' is not a valid cron expression: Bad hour"
    )
    wait_for(lambda: len(schedule_runs(toolrun_home, "good")) >= 1)
    process.stop()


def test_schedule_list_and_run_from_the_cli(
    toolchain: WriteToolchain, toolrun: Toolrun, toolrun_home: Path, probe: Path
) -> None:
    import json

    toolchain(
        "export",
        "params:\n  table: {default: all}\n"
        "schedule: {cron: '0 3 * * *', timezone: Asia/Shanghai, params: {table: hero}}\n"
        "toolchain:\n  - a: {cmd: probe, args: [echo, '${{ params.table }}']}\n",
    )
    listed = json.loads(toolrun("schedule", "list", "--json").stdout)
    [row] = listed
    assert (row["name"], row["cron"], row["timezone"], row["last"]) == (
        "export",
        "0 3 * * *",
        "Asia/Shanghai",
        None,
    )
    assert time.gmtime(row["next"]).tm_hour == 19  # 03:00 in Shanghai
    fired = toolrun("schedule", "run", "export", "--plain")
    assert fired.returncode == 0, fired.stderr
    assert "hero" in fired.stdout
    [run] = schedule_runs(toolrun_home, "export")
    assert (run.origin, run.requester, run.params) == ("schedule", "export", {"table": "hero"})
    row = json.loads(toolrun("schedule", "list", "--json").stdout)[0]
    assert (row["last"]["run_id"], row["last"]["run_status"]) == (run.id, "succeeded")
    missing = toolrun("schedule", "run", "exprot")
    assert missing.returncode == 4
    assert "no schedule named 'exprot' (did you mean 'export'?)" in missing.stderr
