from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from toolrun.errors import NotFoundError
from toolrun.history.retention import BACKGROUND_DELETE
from toolrun.history.store import HistoryQuery, Store, check_run_id


def finished_run(store: Store) -> str:
    record, owner = store.create_run(toolchain="t", params={}, steps=[("a", "probe", "probe")])
    store.update_run(record.id, status="succeeded", finished_at=time.time())
    owner.release()
    return record.id


def test_ids_in_one_second_count_up(tmp_path: Path) -> None:
    store = Store(tmp_path)
    ids = [finished_run(store) for _ in range(5)]
    assert len(set(ids)) == 5
    stamps = {run_id.split("-")[0] for run_id in ids}
    for stamp in stamps:
        seqs = sorted(int(i.split("-")[1]) for i in ids if i.startswith(stamp))
        assert seqs == list(range(1, len(seqs) + 1))


OWNER = """\
import sys, time
from pathlib import Path
from toolrun.history.store import Store

store = Store(Path(sys.argv[1]))
for _ in range(3):
    record, owner = store.create_run(toolchain="t", params={}, steps=[])
    store.update_run(record.id, status="running")
    print(record.id, flush=True)
sys.stdin.read()  # owns its runs until the test closes stdin or kills it
"""


def start_owner(home: Path) -> tuple[subprocess.Popen[str], list[str]]:
    owner = subprocess.Popen(
        [sys.executable, "-c", OWNER, str(home)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert owner.stdout is not None
    return owner, [owner.stdout.readline().strip() for _ in range(3)]


@pytest.mark.parametrize("how", ["exits", "is killed"])
def test_the_runs_of_a_process_that_ended_are_interrupted(tmp_path: Path, how: str) -> None:
    owner, ids = start_owner(tmp_path)
    store = Store(tmp_path)
    assert store.mark_interrupted() == []  # alive: its runs are left alone
    if how == "exits":
        assert owner.stdin is not None
        owner.stdin.close()
    else:
        owner.kill()
    owner.wait(timeout=30)
    assert sorted(store.mark_interrupted()) == ids
    for run_id in ids:
        run = store.require_run(run_id)
        assert run.status == "interrupted" and "ended unexpectedly" in (run.error or "")


@pytest.mark.skipif(sys.platform == "win32", reason="Windows keeps a lock per run")
def test_the_runs_of_one_process_share_one_lock_through_hard_links(tmp_path: Path) -> None:
    store = Store(tmp_path)
    first, first_owner = store.create_run(toolchain="t", params={}, steps=[])
    second, _ = store.create_run(toolchain="t", params={}, steps=[])
    locks = [tmp_path / "runs" / run_id / "owner.lock" for run_id in (first.id, second.id)]
    assert locks[0].stat().st_ino == locks[1].stat().st_ino
    store.update_run(second.id, status="running")
    first_owner.release()  # the first run ends: the lock its successors link to stays held
    store.update_run(first.id, status="succeeded")
    assert store.mark_interrupted() == []
    # The first run's lock is gone (its folder pruned): a later run takes one of its own.
    locks[0].unlink()
    third, _ = store.create_run(toolchain="t", params={}, steps=[])
    store.update_run(third.id, status="running")
    third_lock = tmp_path / "runs" / third.id / "owner.lock"
    assert third_lock.stat().st_ino != locks[1].stat().st_ino
    assert store.mark_interrupted() == []


def test_a_toolchain_run_again_links_its_snapshot(tmp_path: Path) -> None:
    store = Store(tmp_path)
    ids = [finished_run(store) for _ in range(3)]
    paths = [tmp_path / "runs" / run_id / "toolchain.yaml" for run_id in ids]
    store.save_toolchain(ids[0], "steps: []\n", "a" * 64)
    store.save_toolchain(ids[1], "steps: []\n", "a" * 64)
    assert paths[1].read_text() == "steps: []\n"
    if sys.platform != "win32":
        assert paths[0].stat().st_ino == paths[1].stat().st_ino
    paths[0].write_text("steps: [ ]\n")  # edited by hand, to the same size even
    store.save_toolchain(ids[2], "steps: []\n", "a" * 64)  # not linked to the edited copy
    assert paths[2].read_text() == "steps: []\n"
    assert paths[0].stat().st_ino != paths[2].stat().st_ino


def test_big_prunes_delete_folders_in_the_background(tmp_path: Path) -> None:
    store = Store(tmp_path)
    ids = [finished_run(store) for _ in range(BACKGROUND_DELETE + 10)]
    removed = store.prune(keep=5)
    assert sorted(removed) == sorted(ids[:-5]) and len(removed) == len(set(removed))
    assert [run.id for run in store.list_runs(HistoryQuery(limit=999))] == ids[-5:][::-1]
    assert not any((tmp_path / "runs" / run_id).exists() for run_id in ids[:-5])
    deadline = time.monotonic() + 20
    while (tmp_path / "runs" / ".trash").exists() and any((tmp_path / "runs" / ".trash").iterdir()):
        assert time.monotonic() < deadline, "the background delete never finished"
        time.sleep(0.05)
    assert all((tmp_path / "runs" / run_id).exists() for run_id in ids[-5:])


@pytest.mark.parametrize("bad", ["../x", "20250208123359", "20250208123359-1/..", "x-1", ""])
def test_only_run_ids_reach_a_path(bad: str) -> None:
    with pytest.raises(NotFoundError):
        check_run_id(bad)


def make_runs(store: Store, count: int, **fields: object) -> list[str]:
    """``count`` finished runs written straight to SQL, a second apart (fast for thousands)."""
    base = 1_700_000_000.0
    with store.connect(write=True) as db:
        start = db.execute("SELECT COUNT(*) FROM runs").fetchone()[0]
        ids = []
        for index in range(start, start + count):
            created = base + index
            run_id = time.strftime("%Y%m%d%H%M%S", time.gmtime(created)) + "-1"
            db.execute(
                "INSERT INTO runs (id, stamp, seq, toolchain, status, requester, params,"
                " created_at) VALUES (?, ?, 1, ?, 'succeeded', ?, ?, ?)",
                (
                    run_id,
                    run_id[:14],
                    fields.get("toolchain", "nightly"),
                    fields.get("requester", "ci"),
                    fields.get("params", '{"table": "d01"}'),
                    created,
                ),
            )
            ids.append(run_id)
    return ids


def test_free_text_finds_rare_text_deep_in_a_big_store_through_the_index(tmp_path: Path) -> None:
    store = Store(tmp_path)
    rare = make_runs(store, 3, toolchain="one-off-export")
    make_runs(store, 25_000)  # more than the recent window, all newer than the rare runs
    found = store.list_runs(HistoryQuery(text="off-exp", limit=10))
    assert [run.id for run in found] == rare[::-1]
    assert store.count_runs(HistoryQuery(text="OFF-EXP")) == 3  # case does not matter
    common = store.list_runs(HistoryQuery(text="nightly", limit=5))
    assert len(common) == 5 and not {run.id for run in common} & set(rare)
    assert store.list_runs(HistoryQuery(text="nowhere-to-be-found")) == []


def test_free_text_takes_percent_and_underscore_literally(tmp_path: Path) -> None:
    store = Store(tmp_path)
    plain = make_runs(store, 2, params='{"table": "d01"}')
    odd = make_runs(store, 1, params='{"table": "100%_done"}')
    for text in ("%_d", "0%", "_"):
        assert [run.id for run in store.list_runs(HistoryQuery(text=text))] == odd, text
    assert len(store.list_runs(HistoryQuery(text="d0"))) == len(plain)  # short: no index


def test_free_text_with_a_nul_finds_nothing_rather_than_failing(tmp_path: Path) -> None:
    # FTS5 reads a phrase only up to a NUL: it was "unterminated string", a 507 over HTTP.
    store = Store(tmp_path)
    make_runs(store, 2, toolchain="a")
    assert store.list_runs(HistoryQuery(text="a\x00b")) == []
    assert store.count_runs(HistoryQuery(text="a\x00")) == 0
    assert len(store.list_runs(HistoryQuery(text="a"))) == 2


def test_the_text_index_follows_deletes_and_is_built_for_an_older_store(tmp_path: Path) -> None:
    import sqlite3

    store = Store(tmp_path)
    ids = make_runs(store, 4, requester="alice")
    store.delete_run(ids[0])
    assert {r.id for r in store.list_runs(HistoryQuery(text="alice"))} == set(ids[1:])
    store.close()
    # A store from before the index: drop it, as an earlier toolrun never made it.
    db = sqlite3.connect(tmp_path / "history.db")
    db.executescript(
        "DROP TRIGGER runs_text_insert; DROP TRIGGER runs_text_delete;"
        " DROP TRIGGER runs_text_update; DROP TABLE runs_text;"
    )
    db.close()
    reopened = Store(tmp_path)
    assert {r.id for r in reopened.list_runs(HistoryQuery(text="alice"))} == set(ids[1:])


def test_background_checkpoints_keep_the_log_bounded(tmp_path: Path) -> None:
    """The daemon's store: a thread checkpoints, no commit does, and the log starts over."""
    store = Store(tmp_path)
    store.checkpoint_in_background(interval=0.05)
    with store.connect() as db:
        assert db.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 0
    wal = tmp_path / "history.db-wal"
    empty = (tmp_path / "history.db").stat().st_size
    for index in range(300):  # about 80 KB of log each: 24 MB if it never started over
        record, owner = store.create_run(
            toolchain="t", params={"n": index}, steps=[("a", "p", "p")]
        )
        store.update_run(record.id, status="running")
        store.update_run(record.id, status="succeeded")
        owner.release()
        time.sleep(0.002)
    assert wal.stat().st_size < 16 * 1024 * 1024
    assert (tmp_path / "history.db").stat().st_size > empty  # the runs were copied in
    store.close()
    assert len(Store(tmp_path).list_runs(HistoryQuery(limit=1000))) == 300


def test_an_older_store_gets_the_later_columns(tmp_path: Path) -> None:
    import sqlite3

    from toolrun.history.schema import SCHEMA

    runs_table = SCHEMA[: SCHEMA.index(");") + 2]
    old_runs_table = runs_table.replace(",\n    priority INTEGER NOT NULL DEFAULT 0", "")
    assert old_runs_table != runs_table
    db = sqlite3.connect(tmp_path / "history.db")
    db.executescript(old_runs_table)
    db.executescript(
        "CREATE TABLE steps (run_id TEXT NOT NULL, step_id TEXT NOT NULL, position INTEGER NOT"
        " NULL, tool TEXT NOT NULL, spec TEXT NOT NULL, version TEXT, sha256 TEXT, status TEXT"
        " NOT NULL DEFAULT 'pending', attempts INTEGER NOT NULL DEFAULT 0, exit_code INTEGER,"
        " started_at REAL, finished_at REAL, outputs TEXT NOT NULL DEFAULT '{}', error TEXT,"
        " allowed_failure INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (run_id, step_id));"
    )
    db.close()
    store = Store(tmp_path)
    record, owner = store.create_run(toolchain="t", params={}, steps=[("a", "p", "p")], priority=7)
    store.update_step(record.id, "a", status="cancelled", pid=os.getpid(), pid_started=1.5)
    owner.release()
    assert store.processes_left([record.id]) == [(os.getpid(), 1.5, None)]
    assert record.priority == 7
    Store(tmp_path).list_runs(HistoryQuery())  # a second opening finds the columns there


def test_process_start_time_tells_a_process_from_a_later_one() -> None:
    from toolrun.executors.processes import process_start_time

    child = subprocess.Popen([sys.executable, "-c", "pass"])
    started = process_start_time(child.pid)
    assert started is not None and started == process_start_time(child.pid)
    child.wait()
    assert process_start_time(child.pid) is None
    assert process_start_time(os.getpid()) not in (None, started)
