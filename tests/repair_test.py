"""``toolrun history repair`` in this process, over real run folders: no index at all, an index
that is a folder, one of junk bytes, one whose rows are half readable; logs from an older
toolrun, logs cut short, folders without a log, and a run whose owner still lives."""

from __future__ import annotations

import calendar
import hashlib
import sqlite3
import time
from pathlib import Path
from typing import Any

from toolrun.history.repair import repair
from toolrun.history.store import Store
from toolrun.runs import events as ev
from toolrun.runs.events import Event, EventLog


def write_log(folder: Path, events: list[tuple[str, str | None, dict[str, Any]]]) -> None:
    log = EventLog(folder / "events.jsonl")
    for seq, (kind, step, data) in enumerate(events, 1):
        log.append(Event(seq, 1_700_000_000.0 + seq, kind, step, 1 if step else None, data))
    log.close()


def new_run(store: Store, steps: list[str], toolchain: str = "chain") -> tuple[str, Any]:
    record, owner = store.create_run(
        toolchain=toolchain, params={"n": 1}, steps=[(s, "probe", "probe@1") for s in steps]
    )
    return record.id, owner


def orphan(folder: Path) -> None:
    """Leave the run's owner lock as a runner that died leaves it: there, and held by none."""
    lock = folder / "owner.lock"
    lock.unlink()
    lock.write_bytes(b"")


def drop_index(home: Path) -> None:
    for name in ("history.db", "history.db-wal", "history.db-shm"):
        (home / name).unlink(missing_ok=True)


def test_without_an_index_every_run_folder_is_rebuilt_from_what_it_holds(
    toolrun_home: Path,
) -> None:
    store = Store(toolrun_home)
    # A run that ended, whose log says everything (one step ran, one was skipped).
    ended, owner = new_run(store, ["a", "b"])
    write_log(
        store.run_dir(ended),
        [
            (
                ev.RUN_STARTED,
                None,
                {"toolchain": "chain", "params": {"n": 1}, "steps": ["a", "b"], "priority": 10},
            ),
            (ev.STEP_STARTED, "a", {"tool": "probe", "version": "1.0.0"}),
            (ev.STEP_FINISHED, "a", {"status": "failed", "exit_code": 3, "outputs": {"k": 1}}),
            (ev.STEP_SKIPPED, "b", {"status": "skipped", "reason": "a failed"}),
            (ev.RUN_FINISHED, None, {"status": "failed", "exit_code": 1, "error": "a failed"}),
        ],
    )
    owner.release()
    # A run whose runner died mid-step: nothing holds its owner lock.
    died, owner = new_run(store, ["a"])
    write_log(
        store.run_dir(died),
        [
            (ev.RUN_STARTED, None, {"toolchain": "chain", "steps": ["a"]}),
            (ev.STEP_STARTED, "a", {"tool": "probe", "version": "1.0.0"}),
        ],
    )
    owner.release()
    orphan(store.run_dir(died))
    # A run still going: its owner (this process) holds the lock.
    going, held = new_run(store, ["a"])
    write_log(store.run_dir(going), [(ev.RUN_STARTED, None, {"toolchain": "chain"})])
    # A one-tool run that never started: a folder with its toolchain's snapshot, no log.
    never, owner = new_run(store, ["greet"], toolchain="greet")
    owner.release()
    snapshot = b"# toolrun exec greet@1.0=x\ntoolchain:\n  - greet: {cmd: greet}\n"
    (store.run_dir(never) / "toolchain.yaml").write_bytes(snapshot)
    (store.run_dir(never) / "events.jsonl").unlink(missing_ok=True)
    orphan(store.run_dir(never))
    store.close()
    drop_index(toolrun_home)
    (toolrun_home / "runs" / "not-a-run").mkdir()  # nothing of toolrun's: left out
    (toolrun_home / "runs" / "20250101000000-1.txt").write_text("a file, not a folder")

    report = repair(toolrun_home)

    assert (report.runs, report.from_logs, report.from_old_index) == (4, 3, 0)
    assert report.kept_aside is None
    store = Store(toolrun_home)
    try:
        run = store.require_run(ended)
        assert (run.status, run.exit_code, run.error) == ("failed", 1, "a failed")
        assert (run.toolchain, run.params, run.priority) == ("chain", {"n": 1}, 10)
        a, b = store.steps(ended)
        assert (a.step_id, a.status, a.exit_code, a.outputs, a.attempts) == (
            "a",
            "failed",
            3,
            {"k": "1"},
            1,
        )
        assert (a.tool, a.version) == ("probe", "1.0.0")
        assert (b.step_id, b.status, b.error) == ("b", "skipped", "a failed")

        run = store.require_run(died)
        assert (run.status, run.exit_code) == ("interrupted", 1)
        assert run.finished_at == run.started_at  # when it is last known to have been going
        (step,) = store.steps(died)
        assert step.status == "cancelled"  # it never finished: the run's end ended it

        assert store.require_run(going).status == "running"

        run = store.require_run(never)
        assert (run.status, run.toolchain) == ("interrupted", "greet")
        made = calendar.timegm(time.strptime(never.split("-")[0], "%Y%m%d%H%M%S"))
        assert run.created_at == run.finished_at == made  # from its id: nothing else says
        assert run.toolchain_sha256 == hashlib.sha256(snapshot).hexdigest()
        assert store.steps(never) == []
    finally:
        store.close()
        held.release()


def test_a_damaged_index_gives_what_it_can_where_older_logs_say_too_little(
    toolrun_home: Path,
) -> None:
    store = Store(toolrun_home)
    old, owner = new_run(store, ["x", "y"], toolchain="legacy")
    store.update_run(old, status="succeeded", exit_code=0, started_at=1.0, finished_at=2.0)
    # An older toolrun's log: no run_started, so only the index knows the toolchain and steps.
    write_log(
        store.run_dir(old),
        [
            (ev.STEP_FINISHED, "x", {"status": "succeeded", "exit_code": 0}),
            (ev.RUN_FINISHED, None, {"status": "succeeded", "exit_code": 0}),
        ],
    )
    owner.release()
    odd, owner = new_run(store, ["z"], toolchain="odd")
    owner.release()
    (store.run_dir(odd) / "events.jsonl").unlink(missing_ok=True)
    orphan(store.run_dir(odd))
    store.close()
    db = sqlite3.connect(toolrun_home / "history.db")  # rows damaged in place
    with db:
        db.execute("UPDATE runs SET params = '{not json' WHERE id = ?", (old,))
        db.execute("UPDATE runs SET params = '[1, 2]', status = 'queued' WHERE id = ?", (odd,))
        db.execute("UPDATE steps SET outputs = 'nope' WHERE run_id = ?", (old,))
    db.close()  # the last connection: its changes are in history.db itself

    report = repair(toolrun_home)

    assert (report.runs, report.from_logs, report.from_old_index) == (2, 0, 2)
    assert report.kept_aside is not None and report.kept_aside.exists()
    store = Store(toolrun_home)
    try:
        run = store.require_run(old)
        assert (run.toolchain, run.status, run.params) == ("legacy", "succeeded", {})
        steps = store.steps(old)
        assert [(s.step_id, s.tool, s.spec, s.status) for s in steps] == [
            ("x", "probe", "probe@1", "succeeded"),
            ("y", "probe", "probe@1", "pending"),
        ]
        assert steps[0].outputs == {}
        run = store.require_run(odd)
        assert (run.toolchain, run.status, run.params) == ("odd", "interrupted", {})
        assert [s.status for s in store.steps(odd)] == ["cancelled"]
    finally:
        store.close()


def test_an_index_that_is_a_folder_or_junk_is_set_aside_and_the_logs_rebuild_it(
    toolrun_home: Path,
) -> None:
    store = Store(toolrun_home)
    run_id, owner = new_run(store, ["a"])
    write_log(
        store.run_dir(run_id),
        [
            (ev.RUN_STARTED, None, {"toolchain": "chain", "steps": ["a"]}),
            (ev.RUN_FINISHED, None, {"status": "succeeded", "exit_code": 0}),
        ],
    )
    owner.release()
    store.close()
    drop_index(toolrun_home)
    (toolrun_home / "history.db").mkdir()  # a folder where the index should be
    (toolrun_home / "history.db-wal").write_bytes(b"\x00" * 64)

    first = repair(toolrun_home)

    assert (first.runs, first.from_logs, first.from_old_index) == (1, 1, 0)
    assert first.kept_aside is not None and first.kept_aside.is_dir()
    assert Path(f"{first.kept_aside}-wal").read_bytes() == b"\x00" * 64  # moved with it
    assert (toolrun_home / "history.db").is_file()
    for aside in toolrun_home.glob("history.db.damaged-*"):  # the next repair's name is free
        aside.rename(aside.with_name(aside.name.replace("damaged", "earlier")))
    drop_index(toolrun_home)
    (toolrun_home / "history.db").write_bytes(b"\xee" * 8192)  # junk where the index should be

    second = repair(toolrun_home)

    assert (second.runs, second.from_logs, second.from_old_index) == (1, 1, 0)
    assert second.kept_aside is not None
    assert second.kept_aside.read_bytes() == b"\xee" * 8192  # kept as it was found
    store = Store(toolrun_home)
    try:
        assert store.require_run(run_id).status == "succeeded"
        assert [s.status for s in store.steps(run_id)] == ["pending"]
    finally:
        store.close()


# Found by the coverage work: the old index was read with immutable=1, which skips its -wal.
def test_what_only_the_old_indexs_wal_holds_is_salvaged(toolrun_home: Path) -> None:
    first = Store(toolrun_home)
    first.create_run(toolchain="first", params={}, steps=[])[1].release()
    first.close()  # the index exists, checkpointed
    keeper = sqlite3.connect(
        toolrun_home / "history.db"
    )  # another toolrun (the daemon) has it open
    keeper.execute("SELECT count(*) FROM runs").fetchall()
    store = Store(toolrun_home)
    record, owner = store.create_run(
        toolchain="nightly", params={"n": 1}, steps=[("a", "probe", "probe")]
    )  # queued: its folder has no log yet, only the index knows it
    owner.release()
    store.close()
    assert Path(f"{toolrun_home}/history.db-wal").stat().st_size > 0  # not checkpointed yet
    (toolrun_home / "runs" / record.id / "events.jsonl").unlink(missing_ok=True)
    lock = toolrun_home / "runs" / record.id / "owner.lock"
    lock.unlink()
    lock.write_bytes(b"")  # its owner died
    report = repair(toolrun_home)
    keeper.close()
    assert report.from_old_index == 2  # "first" and "nightly"
    store = Store(toolrun_home)
    run = store.require_run(record.id)
    store.close()
    assert (run.toolchain, run.params) == ("nightly", {"n": 1})
