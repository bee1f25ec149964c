"""The history: runs and steps in SQLite (WAL), each run's files in ``runs/<id>/``.

``Store`` is the history's door: the engine, the front ends and repair read and write runs
only through its methods. Its parts: the records (``model.py``), the database file and its
connection (``database.py``, ``schema.py``), listing (``queries.py``), the final event
(``endings.py``) and pruning (``retention.py``). Run ids are allocated inside SQLite's write
lock, so they are unique across the processes that share a store.

What is left here stays one class: each method is a transaction on the one shared connection,
most also on the run's folder beside its row (created, restored, marked, deleted together).
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from pathlib import Path

from ..errors import NotFoundError, StorageError, UsageError
from ..runs.events import RUN_FINISHED, append_final
from .database import Database
from .model import (
    ACTIVE,
    RUN_ID_RE,
    RUN_STATES,
    STEP_STATES,
    RunRecord,
    StepRecord,
    check_run_id,
    run_from_row,
    step_from_row,
)
from .ownership import OwnerLock, RunOwnership, owner_alive
from .queries import HistoryQuery, count_sql, list_sql, wants_text_index

# `typing` costs milliseconds at start-up; annotations alone never need it at run time.
TYPE_CHECKING = False
if TYPE_CHECKING:
    import sqlite3
    from contextlib import AbstractContextManager
    from typing import Any

# What other modules import from here, wherever it is defined. (endings.py and retention.py
# are imported where they are needed: neither is on `toolrun exec`'s path.)
__all__ = [
    "ACTIVE",
    "RUN_ID_RE",
    "RUN_STATES",
    "STEP_STATES",
    "HistoryQuery",
    "RunRecord",
    "StepRecord",
    "Store",
    "check_run_id",
    "host_name",
]


class Store:
    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.db_path = data_dir / "history.db"
        self.runs_dir = data_dir / "runs"
        self._database = Database(self.db_path)
        self._ownership = RunOwnership()
        self._snapshots: dict[str, Path] = {}  # toolchain sha256 -> a run's toolchain.yaml

    # -- connection ---------------------------------------------------------------------------

    def connect(self, *, write: bool = False) -> AbstractContextManager[sqlite3.Connection]:
        """The store's one connection, under a lock; ``write`` holds SQLite's write lock."""
        return self._database.connect(write=write)

    @property
    def read_only(self) -> str:
        """Why the store could be opened only for reading (a full disk), or "" when it can
        be written."""
        return self._database.read_only

    def close(self) -> None:
        self._database.close()

    def checkpoint_in_background(self, interval: float = 0.25) -> None:
        """For a long-lived writer (the daemon): checkpoint the log from a thread of its own."""
        self._database.checkpoint_in_background(interval)

    def run_dir(self, run_id: str) -> Path:
        return self.runs_dir / check_run_id(run_id)

    # -- runs ---------------------------------------------------------------------------------

    def create_run(
        self,
        *,
        toolchain: str,
        params: dict[str, Any],
        steps: list[tuple[str, str, str]],  # (step id, tool, spec)
        resolved: dict[str, tuple[str, str]] | None = None,  # step id -> (version, sha256)
        origin: str = "cli",
        requester: str = "",
        toolchain_sha256: str | None = None,
        rerun_of: str | None = None,
        priority: int = 0,
        lock_sha256: str | None = None,
    ) -> tuple[RunRecord, OwnerLock]:
        """Record a queued run owned by this process, which holds the returned lock until the
        run ends (``OwnerLock.release``)."""
        now = time.time()
        stamp = time.strftime("%Y%m%d%H%M%S", time.gmtime(now))
        versions = resolved or {}
        with self.connect(write=True) as db:
            row = db.execute("SELECT MAX(seq) FROM runs WHERE stamp = ?", (stamp,)).fetchone()
            # The lock is taken before the row is visible to anyone: no reader can ever see
            # this run active without an owner.
            seq, lock = self._take_ownership(stamp, (row[0] or 0) + 1)
            run_id = f"{stamp}-{seq}"
            try:
                db.execute(
                    "INSERT INTO runs (id, stamp, seq, toolchain, status, origin, requester,"
                    " params, created_at, owner_pid, owner_host, toolchain_sha256, rerun_of,"
                    " priority, lock_sha256)"
                    " VALUES (?, ?, ?, ?, 'queued', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        run_id, stamp, seq, toolchain, origin, requester,
                        json.dumps(params, ensure_ascii=False), now, os.getpid(), host_name(),
                        toolchain_sha256, rerun_of, priority, lock_sha256,
                    ),
                )  # fmt: skip
                db.executemany(
                    "INSERT INTO steps (run_id, step_id, position, tool, spec, version, sha256)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?)",
                    [
                        (run_id, sid, i, tool, spec, *versions.get(sid, (None, None)))
                        for i, (sid, tool, spec) in enumerate(steps)
                    ],
                )
            except BaseException:
                # Nothing of a run that could not be recorded is left behind: no folder for
                # the next run of this second to trip on.
                lock.release()
                import shutil

                shutil.rmtree(self.runs_dir / run_id, ignore_errors=True)
                raise
        record = self.get_run(run_id)
        assert record is not None
        return record, lock

    def _take_ownership(self, stamp: str, seq: int) -> tuple[int, OwnerLock]:
        """The run's number and folder, taking the next free number: a folder that no row
        names (its index entry lost, say) is never reused."""
        for _ in range(1000):
            folder = self.runs_dir / f"{stamp}-{seq}"
            try:
                try:
                    folder.mkdir()
                except FileNotFoundError:
                    folder.mkdir(parents=True)  # the store's first run
                (folder / "work").mkdir()
                return seq, self._ownership.claim(folder / "owner.lock")
            except FileExistsError:
                seq += 1
            except OSError as exc:
                reason = exc.strerror or str(exc)
                raise StorageError(f"cannot create the run folder {folder}: {reason}") from None
        raise StorageError(f"{self.runs_dir}: a thousand run folders of {stamp} exist already")

    def restore(self, run: RunRecord, steps: list[StepRecord]) -> None:
        """Put a run rebuilt from its folder into the index (``toolrun history repair``)."""
        stamp, _, seq = run.id.partition("-")
        with self.connect(write=True) as db:
            db.execute(
                "INSERT OR REPLACE INTO runs (id, stamp, seq, toolchain, status, origin,"
                " requester, params, created_at, started_at, finished_at, exit_code, error,"
                " owner_host, toolchain_sha256, rerun_of, size_bytes, priority, lock_sha256)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    run.id, stamp, int(seq), run.toolchain, run.status, run.origin,
                    run.requester, json.dumps(run.params, ensure_ascii=False), run.created_at,
                    run.started_at, run.finished_at, run.exit_code, run.error, run.owner_host,
                    run.toolchain_sha256, run.rerun_of, run.size_bytes, run.priority,
                    run.lock_sha256,
                ),
            )  # fmt: skip
            db.execute("DELETE FROM steps WHERE run_id = ?", (run.id,))
            db.executemany(
                "INSERT INTO steps (run_id, step_id, position, tool, spec, version, sha256,"
                " status, attempts, exit_code, started_at, finished_at, outputs, error,"
                " allowed_failure) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        s.run_id, s.step_id, s.position, s.tool, s.spec, s.version, s.sha256,
                        s.status, s.attempts, s.exit_code, s.started_at, s.finished_at,
                        json.dumps(s.outputs, ensure_ascii=False), s.error,
                        int(s.allowed_failure),
                    )
                    for s in steps
                ],
            )  # fmt: skip

    def has_run_folders(self) -> bool:
        """Whether ``runs/`` holds a run's folder (an index that lists none has lost them)."""
        try:
            with os.scandir(self.runs_dir) as entries:
                return any(RUN_ID_RE.fullmatch(entry.name) for entry in entries)
        except OSError:
            return False

    def save_toolchain(self, run_id: str, text: str, sha256: str) -> None:
        """The run's ``toolchain.yaml``. A run of a toolchain this store has saved before gets a
        hard link to that copy: no new inode, which is what costs (see history/ownership.py)."""
        path = self.runs_dir / run_id / "toolchain.yaml"
        data = text.encode("utf-8")
        earlier = self._snapshots.get(sha256)
        if earlier is not None:
            try:
                # Reading it back (0.02 ms) guards against a copy edited by hand since.
                if earlier.read_bytes() == data:
                    os.link(earlier, path)
                    return
            except OSError:
                pass  # pruned since, or no hard links on this file system
        path.write_bytes(data)
        if len(self._snapshots) >= 256:
            self._snapshots.clear()
        self._snapshots[sha256] = path

    def update_run(self, run_id: str, **fields: Any) -> None:
        self._update("runs", "id = ?", (run_id,), fields)

    def update_step(self, run_id: str, step_id: str, **fields: Any) -> None:
        self._update("steps", "run_id = ? AND step_id = ?", (run_id, step_id), fields)

    def update_rows(self, run_id: str, changes: dict[str | None, dict[str, Any]]) -> None:
        """Changes to a run's row (key None) and its steps' rows (their ids), in one
        transaction."""
        with self.connect(write=True) as db:
            for step_id, fields in changes.items():
                if not fields:
                    continue
                assignments, values = _assignments(fields)
                if step_id is None:
                    db.execute(f"UPDATE runs SET {assignments} WHERE id = ?", (*values, run_id))
                else:
                    db.execute(
                        f"UPDATE steps SET {assignments} WHERE run_id = ? AND step_id = ?",
                        (*values, run_id, step_id),
                    )

    def _update(
        self, table: str, where: str, keys: tuple[Any, ...], fields: dict[str, Any]
    ) -> None:
        if not fields:
            return
        assignments, values = _assignments(fields)
        with self.connect(write=True) as db:
            db.execute(f"UPDATE {table} SET {assignments} WHERE {where}", (*values, *keys))

    def get_run(self, run_id: str) -> RunRecord | None:
        check_run_id(run_id)
        with self.connect() as db:
            row = db.execute("SELECT * FROM runs WHERE id = ?", (run_id,)).fetchone()
        return run_from_row(row) if row else None

    def require_run(self, run_id: str) -> RunRecord:
        run = self.get_run(run_id)
        if run is None:
            raise NotFoundError(f"no run {run_id!r} in {self.db_path}")
        return run

    def steps(self, run_id: str) -> list[StepRecord]:
        with self.connect() as db:
            rows = db.execute(
                "SELECT * FROM steps WHERE run_id = ? ORDER BY position", (run_id,)
            ).fetchall()
        return [step_from_row(row) for row in rows]

    def list_runs(self, query: HistoryQuery) -> list[RunRecord]:
        if wants_text_index(query) and self._database.has_text_index():
            if query.order in ("started", "id") and query.descending:
                # Text the newest runs hold is found fastest by reading them; rare text, by
                # the index (whose matches must all be sorted). Try the first, then the other.
                recent = self._list_runs(query, recent=True)
                if len(recent) >= query.limit:
                    return recent
            return self._list_runs(query, indexed=True)
        return self._list_runs(query)

    def _list_runs(
        self, query: HistoryQuery, *, recent: bool = False, indexed: bool = False
    ) -> list[RunRecord]:
        sql, values = list_sql(query, recent=recent, indexed=indexed)
        with self.connect() as db:
            rows = db.execute(sql, values).fetchall()
        return [run_from_row(row) for row in rows]

    def count_runs(self, query: HistoryQuery) -> int:
        indexed = wants_text_index(query) and self._database.has_text_index()
        sql, values = count_sql(query, indexed=indexed)
        with self.connect() as db:
            return int(db.execute(sql, values).fetchone()[0])

    def position_of(self, run_id: str) -> tuple[float, int] | None:
        """Where a run sits in the newest-first order, for paging on from it."""
        with self.connect() as db:
            row = db.execute(
                "SELECT created_at, seq FROM runs WHERE id = ?", (check_run_id(run_id),)
            ).fetchone()
        return (row[0], row[1]) if row else None

    def request_cancel(self, run_id: str) -> None:
        self.update_run(run_id, cancel_requested=1)

    def request_control(self, run_id: str, wanted: int) -> bool:
        """Ask a run's owner, whichever process it is, to pause (1), pause and freeze its
        running steps (2), or go on (0). Each request gets a new number, so the owner sees a
        second pause after a resume made elsewhere. False when the run has ended."""
        marks = ", ".join("?" for _ in ACTIVE)
        with self.connect(write=True) as db:
            cursor = db.execute(
                f"UPDATE runs SET control = (control / 4 + 1) * 4 + ? "
                f"WHERE id = ? AND status IN ({marks})",
                (wanted, check_run_id(run_id), *ACTIVE),
            )
            return cursor.rowcount == 1

    def controls(self, run_id: str) -> tuple[bool, int]:
        """What other processes asked of a run: cancel, and the last control request."""
        with self.connect() as db:
            row = db.execute(
                "SELECT cancel_requested, control FROM runs WHERE id = ?", (run_id,)
            ).fetchone()
        return (bool(row[0]), int(row[1])) if row else (False, 0)

    def cancel_requested(self, run_id: str) -> bool:
        with self.connect() as db:
            row = db.execute("SELECT cancel_requested FROM runs WHERE id = ?", (run_id,)).fetchone()
        return bool(row and row[0])

    # -- recovery and retention ---------------------------------------------------------------

    def mark_interrupted(self) -> list[str]:
        """Runs whose owning process is gone become ``interrupted``; returns their ids."""
        with self.connect() as db:
            if self.read_only:
                return []  # the next toolrun that can write will
            rows = db.execute(
                "SELECT id, owner_host FROM runs WHERE status IN ('queued', 'running')"
            ).fetchall()
        host = host_name()
        # Only this machine's runs can be judged: another host's locks are not visible here.
        dead = [
            row["id"]
            for row in rows
            if row["owner_host"] == host
            and not owner_alive(self.runs_dir / row["id"] / "owner.lock")
        ]
        if not dead:
            return []
        from .endings import INTERRUPTED, run_finished_data

        now = time.time()
        marked = []
        for run_id in dead:
            with self.connect(write=True) as db:
                changed = db.execute(
                    "UPDATE runs SET status = 'interrupted', finished_at = ?, exit_code = 1,"
                    " error = ? WHERE id = ? AND status IN ('queued', 'running')",
                    (now, INTERRUPTED, run_id),
                ).rowcount
                db.execute(
                    "UPDATE steps SET status = 'cancelled', finished_at = ?"
                    " WHERE run_id = ? AND status IN ('running', 'pending')",
                    (now, run_id),
                )
            if changed:  # another toolrun may have found it first
                marked.append(run_id)
                record = self.get_run(run_id)
                assert record is not None
                # Every run's log ends with run_finished: readers that follow it stop there.
                final = run_finished_data(record)
                append_final(self.runs_dir / run_id / "events.jsonl", RUN_FINISHED, **final)
        return marked

    def processes_left(self, run_ids: list[str]) -> list[tuple[int, float, str | None]]:
        """The processes of steps cut short in these runs (pid, start time, cgroup): after
        their runner died, nothing else will end them."""
        if not run_ids:
            return []
        marks = ", ".join("?" * len(run_ids))
        with self.connect() as db:
            rows = db.execute(
                f"SELECT pid, pid_started, cgroup FROM steps WHERE run_id IN ({marks})"
                " AND status = 'cancelled' AND pid IS NOT NULL AND pid_started IS NOT NULL",
                run_ids,
            ).fetchall()
        return [(row[0], row[1], row[2]) for row in rows]

    def delete_run(self, run_id: str) -> None:
        run = self.require_run(run_id)
        if run.is_active:
            raise UsageError(f"run {run_id} is still {run.status}; cancel it first")
        self._delete([run_id])

    def _delete(self, run_ids: list[str]) -> None:
        """Rows first, in one transaction, then folders: a run is never half listed."""
        with self.connect(write=True) as db:
            db.execute("CREATE TEMP TABLE IF NOT EXISTS doomed (id TEXT PRIMARY KEY)")
            db.execute("DELETE FROM doomed")
            db.executemany("INSERT OR IGNORE INTO doomed VALUES (?)", ((i,) for i in run_ids))
            db.execute("DELETE FROM steps WHERE run_id IN (SELECT id FROM doomed)")
            db.execute("DELETE FROM runs WHERE id IN (SELECT id FROM doomed)")
        from .retention import remove_folders

        remove_folders(self.runs_dir, run_ids)

    def prune(
        self,
        *,
        older_than: float | None = None,
        keep: int | None = None,
        max_size: int | None = None,
        dry_run: bool = False,
    ) -> list[str]:
        """Delete finished runs: older than ``older_than`` seconds, beyond the newest ``keep``,
        and the oldest until the rest fit in ``max_size`` bytes. Returns the ids removed."""
        from .retention import prune_sql

        select = prune_sql(older_than=older_than, keep=keep, max_size=max_size)
        if select is None:
            return []
        with self.connect() as db:
            doomed = [row[0] for row in db.execute(*select)]
        if not dry_run:
            self._delete(doomed)
        return doomed

    def folder_size(self, run_id: str) -> int:
        """The bytes a run's folder holds, for ``prune --max-size`` (the run's ``size_bytes``)."""
        total = 0
        for root, _dirs, files in os.walk(self.run_dir(run_id)):
            for name in files:
                with contextlib.suppress(OSError):
                    total += os.lstat(os.path.join(root, name)).st_size
        return total


def _assignments(fields: dict[str, Any]) -> tuple[str, list[Any]]:
    """``a = ?, b = ?`` and the values, lists and mappings as JSON."""
    values = [
        json.dumps(v, ensure_ascii=False) if isinstance(v, dict | list) else v
        for v in fields.values()
    ]
    return ", ".join(f"{name} = ?" for name in fields), values


def host_name() -> str:
    return platform_node() or "localhost"


def platform_node() -> str:
    if hasattr(os, "uname"):
        return str(os.uname().nodename)
    return os.environ.get("COMPUTERNAME", "")
