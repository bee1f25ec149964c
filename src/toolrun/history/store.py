"""The history: runs and steps in SQLite (WAL), each run's files in ``runs/<id>/``.

Several toolrun processes (CLI, TUI, daemon) share one store. Writes take SQLite's write lock
up front (BEGIN IMMEDIATE) and wait for it (busy timeout), so none sees "database is locked";
run ids are allocated inside that lock, so they are unique across processes.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from ..errors import NotFoundError, StorageError, UsageError
from ..records import field, record
from ..runs.events import RUN_FINISHED, Event, append_final, last_event
from .ownership import OwnerLock, RunOwnership, owner_alive

# `typing` costs milliseconds at start-up; annotations alone never need it at run time.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

BACKGROUND_DELETE = 200  # runs deleted at once before folders go to a background deleter
SORT_ORDERS = {
    "started": "created_at",
    "id": "created_at",
    "toolchain": "toolchain",
    "status": "status",
    "duration": "(finished_at - started_at)",
    "requester": "requester",
    "origin": "origin",
}
RUN_ID_RE = re.compile(r"[0-9]{14}-[0-9]{1,9}")  # ASCII digits; used with fullmatch
ACTIVE = ("queued", "running")
RUN_STATES = ("queued", "running", "succeeded", "failed", "cancelled", "timed_out", "interrupted")
STEP_STATES = ("pending", "running", "succeeded", "failed", "skipped", "cancelled", "timed_out")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY,
    stamp TEXT NOT NULL,
    seq INTEGER NOT NULL,
    toolchain TEXT NOT NULL,
    status TEXT NOT NULL,
    origin TEXT NOT NULL DEFAULT 'cli',
    requester TEXT NOT NULL DEFAULT '',
    params TEXT NOT NULL DEFAULT '{}',
    created_at REAL NOT NULL,
    started_at REAL,
    finished_at REAL,
    exit_code INTEGER,
    error TEXT,
    owner_pid INTEGER,
    owner_host TEXT,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    toolchain_sha256 TEXT,
    rerun_of TEXT,
    size_bytes INTEGER NOT NULL DEFAULT 0
);
CREATE UNIQUE INDEX IF NOT EXISTS runs_stamp_seq ON runs (stamp, seq);
CREATE INDEX IF NOT EXISTS runs_created ON runs (created_at);
CREATE INDEX IF NOT EXISTS runs_status_created ON runs (status, created_at);
CREATE INDEX IF NOT EXISTS runs_toolchain_created ON runs (toolchain, created_at);
CREATE TABLE IF NOT EXISTS steps (
    run_id TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    step_id TEXT NOT NULL,
    position INTEGER NOT NULL,
    tool TEXT NOT NULL,
    spec TEXT NOT NULL,
    version TEXT,
    sha256 TEXT,
    status TEXT NOT NULL DEFAULT 'pending',
    attempts INTEGER NOT NULL DEFAULT 0,
    exit_code INTEGER,
    started_at REAL,
    finished_at REAL,
    outputs TEXT NOT NULL DEFAULT '{}',
    error TEXT,
    allowed_failure INTEGER NOT NULL DEFAULT 0,
    pid INTEGER,  -- the running attempt's process, and when it started (process_start_time)
    pid_started REAL,
    cgroup TEXT,  -- the running attempt's cgroup, where it has one
    PRIMARY KEY (run_id, step_id)
);
"""

# Free text is found through a trigram index: a LIKE over a million runs reads all of them
# when the text is rare (about a second); the index answers in milliseconds. It follows the
# runs table through triggers, and only the columns a person searches are in it.
_TEXT_INDEX = """
CREATE VIRTUAL TABLE runs_text USING fts5(
    id, toolchain, requester, params, content='runs', tokenize='trigram'
);
CREATE TRIGGER runs_text_insert AFTER INSERT ON runs BEGIN
    INSERT INTO runs_text (rowid, id, toolchain, requester, params)
    VALUES (new.rowid, new.id, new.toolchain, new.requester, new.params);
END;
CREATE TRIGGER runs_text_delete AFTER DELETE ON runs BEGIN
    INSERT INTO runs_text (runs_text, rowid, id, toolchain, requester, params)
    VALUES ('delete', old.rowid, old.id, old.toolchain, old.requester, old.params);
END;
CREATE TRIGGER runs_text_update AFTER UPDATE OF id, toolchain, requester, params ON runs BEGIN
    INSERT INTO runs_text (runs_text, rowid, id, toolchain, requester, params)
    VALUES ('delete', old.rowid, old.id, old.toolchain, old.requester, old.params);
    INSERT INTO runs_text (rowid, id, toolchain, requester, params)
    VALUES (new.rowid, new.id, new.toolchain, new.requester, new.params);
END;
INSERT INTO runs_text (runs_text) VALUES ('rebuild');
"""
WAL_RESTART_FRAMES = 1000  # pages in the log before the daemon's checkpoints start it over
RECENT_WINDOW = 20_000  # newest runs searched by a plain scan before the index is asked


def elapsed(started: float | None, finished: float | None) -> float | None:
    """Seconds from start to finish, or to now for something still going."""
    if started is None:
        return None
    return (finished or time.time()) - started


@record(frozen=True)
class StepRecord:
    """A step of a run, as the history keeps it."""

    run_id: str
    step_id: str
    position: int
    tool: str
    spec: str
    version: str | None = None
    sha256: str | None = None
    status: str = "pending"
    attempts: int = 0
    exit_code: int | None = None
    started_at: float | None = None
    finished_at: float | None = None
    outputs: dict[str, str] = field(default_factory=dict)
    error: str | None = None
    allowed_failure: bool = False

    @property
    def duration(self) -> float | None:
        return elapsed(self.started_at, self.finished_at)


@record(frozen=True)
class RunRecord:
    """A run, as the history keeps it."""

    id: str
    toolchain: str
    status: str
    origin: str
    requester: str
    params: dict[str, Any]
    created_at: float
    started_at: float | None = None
    finished_at: float | None = None
    exit_code: int | None = None
    error: str | None = None
    owner_pid: int | None = None
    owner_host: str | None = None
    cancel_requested: bool = False
    toolchain_sha256: str | None = None
    rerun_of: str | None = None
    size_bytes: int = 0

    @property
    def is_active(self) -> bool:
        return self.status in ACTIVE

    @property
    def duration(self) -> float | None:
        return elapsed(self.started_at, self.finished_at)


@record(frozen=True)
class HistoryQuery:
    """Which runs ``Store.runs`` returns, in which order."""

    status: str | None = None
    toolchain: str | None = None
    since: float | None = None
    until: float | None = None
    requester: str | None = None
    text: str | None = None
    limit: int = 50
    offset: int = 0
    order: str = "started"  # a key of SORT_ORDERS
    descending: bool = True
    before: tuple[float, int] | None = None  # (created_at, seq) of a run: only older ones


def check_run_id(run_id: str) -> str:
    """Only well-formed ids ever reach SQL or a path."""
    if not RUN_ID_RE.fullmatch(run_id):
        raise NotFoundError(f"{run_id!r} is not a run id (they look like 20250208123359-1)")
    return run_id


class Store:
    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.db_path = data_dir / "history.db"
        self.runs_dir = data_dir / "runs"
        self._db: sqlite3.Connection | None = None
        self._lock = threading.RLock()
        self._text_index = False
        self._stop_checkpoints = threading.Event()
        self._ownership = RunOwnership()
        self._snapshots: dict[str, Path] = {}  # toolchain sha256 -> a run's toolchain.yaml
        # Why the store could be opened only for reading (a full disk), or "" when it can
        # be written.
        self.read_only = ""

    # -- connection ---------------------------------------------------------------------------

    @contextlib.contextmanager
    def connect(self, *, write: bool = False) -> Iterator[sqlite3.Connection]:
        """The store's one connection, under a lock; ``write`` holds SQLite's write lock.

        One connection for the life of the Store: closing the last connection to a WAL
        database checkpoints it, which made every small update cost milliseconds.
        """
        with self._lock:
            db = self._open()
            if write and self.read_only:
                raise StorageError(
                    f"{self.db_path} can only be read: {self.read_only}",
                    hint="free some space, or make the data folder writable, then try again",
                )
            try:
                if write:
                    db.execute("BEGIN IMMEDIATE")
                    try:
                        yield db
                    except BaseException:
                        db.execute("ROLLBACK")
                        raise
                    db.execute("COMMIT")
                else:
                    yield db
            except sqlite3.DatabaseError as exc:
                raise self._error(exc) from None

    def _error(self, exc: sqlite3.Error, doing: str = "") -> StorageError:
        if is_damage(exc):
            return StorageError(
                f"{self.db_path} is damaged ({exc})",
                hint="toolrun history repair rebuilds it from the run folders (their "
                "events.jsonl), keeping the damaged file aside",
            )
        return StorageError(f"{doing}{self.db_path}: {exc}")

    def _open(self) -> sqlite3.Connection:
        if self._db is not None:
            return self._db
        try:
            db = self._open_writable()
        except (OSError, sqlite3.Error) as exc:
            if isinstance(exc, sqlite3.Error) and is_damage(exc):
                raise self._error(exc) from None
            # A full disk or a read-only file system: what is there can still be read.
            db = self._open_read_only(exc)
        self._db = db
        return db

    def _open_writable(self) -> sqlite3.Connection:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        # Used from the event loop and from its executor threads, always under _lock.
        db = sqlite3.connect(
            self.db_path, timeout=60, isolation_level=None, check_same_thread=False
        )
        try:
            db.row_factory = sqlite3.Row
            db.execute("PRAGMA busy_timeout = 60000")
            db.execute("PRAGMA journal_mode = WAL")
            db.execute("PRAGMA synchronous = NORMAL")
            db.executescript(_SCHEMA)
            _add_process_columns(db)
            self._text_index = _ensure_text_index(db)
        except BaseException:
            db.close()
            raise
        return db

    def _open_read_only(self, why: OSError | sqlite3.Error) -> sqlite3.Connection:
        """The history as it is on disk, without a lock or a write-ahead log of its own
        (``immutable``): it needs no byte of free space. A writer that died since its last
        checkpoint may have left changes this does not see."""
        reason = why.strerror if isinstance(why, OSError) and why.strerror else str(why)
        try:
            if not self.db_path.is_file() or self.db_path.stat().st_size == 0:
                raise StorageError(f"cannot open {self.db_path}: {reason}")
            from urllib.parse import quote

            uri = f"file:{quote(str(self.db_path.absolute()))}?mode=ro&immutable=1"
            db = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
            db.row_factory = sqlite3.Row
            db.execute("SELECT 1 FROM runs LIMIT 1").fetchall()
            query = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'runs_text'"
            self._text_index = db.execute(query).fetchone() is not None
        except sqlite3.Error as exc:
            raise self._error(exc, "cannot open ") from None
        self.read_only = reason
        return db

    def close(self) -> None:
        self._stop_checkpoints.set()
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None

    def checkpoint_in_background(self, interval: float = 0.25) -> None:
        """For a long-lived writer (the daemon): checkpoint the log from a thread of its own.

        Otherwise SQLite checkpoints inside whichever commit takes the write-ahead log past
        1,000 pages, about every 50 runs, and that commit takes 15 ms instead of 0.2: on the
        daemon's event loop, a stall for every request in flight.
        """
        with self.connect() as db:
            db.execute("PRAGMA wal_autocheckpoint = 0")
        thread = threading.Thread(
            target=self._checkpoint_every, args=(interval,), name="checkpoint", daemon=True
        )
        thread.start()

    def _checkpoint_every(self, interval: float) -> None:
        # timeout=0: this connection never waits for a lock; a checkpoint that would have to
        # is tried again at the next turn.
        db = sqlite3.connect(self.db_path, timeout=0, isolation_level=None)
        try:
            while not self._stop_checkpoints.wait(interval):
                with contextlib.suppress(sqlite3.Error):
                    # PASSIVE copies what it can and never holds up a writer, but under steady
                    # writing it never reaches the end of the log, so the log would never
                    # start over and would grow without end. RESTART does start it over,
                    # holding writers up only while it copies the little PASSIVE left.
                    _busy, frames, _copied = db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                    if frames > WAL_RESTART_FRAMES:
                        db.execute("PRAGMA wal_checkpoint(RESTART)")
        finally:
            db.close()

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
                    " params, created_at, owner_pid, owner_host, toolchain_sha256, rerun_of)"
                    " VALUES (?, ?, ?, ?, 'queued', ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        run_id, stamp, seq, toolchain, origin, requester,
                        json.dumps(params, ensure_ascii=False), now, os.getpid(), host_name(),
                        toolchain_sha256, rerun_of,
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
                " owner_host, toolchain_sha256, rerun_of, size_bytes)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    run.id, stamp, int(seq), run.toolchain, run.status, run.origin,
                    run.requester, json.dumps(run.params, ensure_ascii=False), run.created_at,
                    run.started_at, run.finished_at, run.exit_code, run.error, run.owner_host,
                    run.toolchain_sha256, run.rerun_of, run.size_bytes,
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

    def _update(
        self, table: str, where: str, keys: tuple[Any, ...], fields: dict[str, Any]
    ) -> None:
        if not fields:
            return
        values = [
            json.dumps(v, ensure_ascii=False) if isinstance(v, dict) else v for v in fields.values()
        ]
        assignments = ", ".join(f"{name} = ?" for name in fields)
        with self.connect(write=True) as db:
            db.execute(f"UPDATE {table} SET {assignments} WHERE {where}", (*values, *keys))

    def get_run(self, run_id: str) -> RunRecord | None:
        check_run_id(run_id)
        with self.connect() as db:
            row = db.execute("SELECT * FROM runs WHERE id = ?", (run_id,)).fetchone()
        return _run_from_row(row) if row else None

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
        return [_step_from_row(row) for row in rows]

    def list_runs(self, query: HistoryQuery) -> list[RunRecord]:
        if query.text and len(query.text) >= 3 and self._has_text_index():
            if query.order in ("started", "id") and query.descending:
                # Text the newest runs hold is found fastest by reading them; rare text, by
                # the index (whose matches must all be sorted). Try the first, then the other.
                recent = self._list_runs(query, recent=True)
                if len(recent) >= query.limit:
                    return recent
            return self._list_runs(query, indexed=True)
        return self._list_runs(query)

    def _has_text_index(self) -> bool:
        with self.connect():
            return self._text_index

    def _list_runs(
        self, query: HistoryQuery, *, recent: bool = False, indexed: bool = False
    ) -> list[RunRecord]:
        clauses, values = _history_filters(query, indexed=indexed)
        if recent:
            clauses.append(
                "created_at >= COALESCE((SELECT created_at FROM runs ORDER BY created_at DESC"
                f" LIMIT 1 OFFSET {RECENT_WINDOW - 1}), 0)"
            )
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        direction = "DESC" if query.descending else "ASC"
        order = SORT_ORDERS.get(query.order, "created_at")  # never the caller's text in SQL
        sql = (
            f"SELECT * FROM runs {where} ORDER BY {order} {direction}, created_at DESC, seq DESC"
            " LIMIT ? OFFSET ?"
        )
        with self.connect() as db:
            rows = db.execute(sql, (*values, query.limit, query.offset)).fetchall()
        return [_run_from_row(row) for row in rows]

    def count_runs(self, query: HistoryQuery) -> int:
        indexed = bool(query.text and len(query.text) >= 3 and self._has_text_index())
        clauses, values = _history_filters(query, indexed=indexed)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        with self.connect() as db:
            return int(db.execute(f"SELECT COUNT(*) FROM runs {where}", values).fetchone()[0])

    def position_of(self, run_id: str) -> tuple[float, int] | None:
        """Where a run sits in the newest-first order, for paging on from it."""
        with self.connect() as db:
            row = db.execute(
                "SELECT created_at, seq FROM runs WHERE id = ?", (check_run_id(run_id),)
            ).fetchone()
        return (row[0], row[1]) if row else None

    def request_cancel(self, run_id: str) -> None:
        self.update_run(run_id, cancel_requested=1)

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
        """Rows first, in one transaction, then folders: a run is never half listed.

        Many folders are renamed into ``runs/.trash`` (cheap) and deleted by a detached
        process, so pruning a hundred thousand runs does not wait on the file system.
        """
        with self.connect(write=True) as db:
            db.execute("CREATE TEMP TABLE IF NOT EXISTS doomed (id TEXT PRIMARY KEY)")
            db.execute("DELETE FROM doomed")
            db.executemany("INSERT OR IGNORE INTO doomed VALUES (?)", ((i,) for i in run_ids))
            db.execute("DELETE FROM steps WHERE run_id IN (SELECT id FROM doomed)")
            db.execute("DELETE FROM runs WHERE id IN (SELECT id FROM doomed)")
        import shutil

        if len(run_ids) < BACKGROUND_DELETE:
            for run_id in run_ids:
                shutil.rmtree(self.runs_dir / run_id, ignore_errors=True)
            return
        trash = self.runs_dir / ".trash" / f"{os.getpid()}-{time.time_ns()}"
        trash.mkdir(parents=True)
        for run_id in run_ids:
            with contextlib.suppress(FileNotFoundError):
                os.rename(self.runs_dir / run_id, trash / run_id)
        delete_in_background(self.runs_dir / ".trash")

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
        conditions = []
        values: list[Any] = []
        if older_than is not None:
            conditions.append("created_at < ?")
            values.append(time.time() - older_than)
        if keep is not None:
            conditions.append("position > ?")
            values.append(keep)
        if max_size is not None:
            conditions.append("total > ?")
            values.append(max_size)
        if not conditions:
            return []
        # Newest first: a run's position and the bytes of it and every newer run decide.
        sql = (
            "SELECT id FROM (SELECT id, created_at,"
            " ROW_NUMBER() OVER (ORDER BY created_at DESC, seq DESC) AS position,"
            " SUM(size_bytes) OVER (ORDER BY created_at DESC, seq DESC) AS total"
            " FROM runs WHERE status NOT IN ('queued', 'running'))"
            f" WHERE {' OR '.join(conditions)}"
        )
        with self.connect() as db:
            doomed = [row[0] for row in db.execute(sql, values)]
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


_LATER_COLUMNS = (("pid", "INTEGER"), ("pid_started", "REAL"), ("cgroup", "TEXT"))


INTERRUPTED = "the toolrun process running it ended unexpectedly"


def is_damage(exc: sqlite3.Error) -> bool:
    """SQLite says the file is not a database, or one whose pages are damaged."""
    code = getattr(exc, "sqlite_errorcode", None)
    return code in (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB) or any(
        words in str(exc) for words in ("malformed", "not a database")
    )


def run_finished_data(record: RunRecord) -> dict[str, Any]:
    """What a ``run_finished`` event says of a run the store has seen end."""
    return {
        "status": record.status,
        "exit_code": record.exit_code if record.exit_code is not None else 1,
        "duration": round(record.duration, 3) if record.duration is not None else None,
        "error": record.error,
    }


def with_ending(events: Iterator[Event], record: RunRecord, log: Path) -> Iterator[Event]:
    """A finished run's stored events, ending with ``run_finished`` as every replay does: one
    made from the store when the log ``log`` has none (its writer died before it could say).
    ``events`` may start after some seq: then none is added if the log ended already."""
    ended = False
    for event in events:
        yield event
        ended = ended or event.kind == RUN_FINISHED
    if ended or record.is_active:
        return
    last = last_event(log)
    if last is not None and last.kind == RUN_FINISHED:
        return
    data = {**run_finished_data(record), "recovered": True}
    seq = last.seq + 1 if last is not None else 1
    yield Event(seq, record.finished_at or time.time(), RUN_FINISHED, data=data)


def _add_process_columns(db: sqlite3.Connection) -> None:
    """Stores made before steps recorded their process get those columns, once."""

    def missing() -> list[tuple[str, str]]:
        have = {row[1] for row in db.execute("PRAGMA table_info(steps)")}
        return [(name, kind) for name, kind in _LATER_COLUMNS if name not in have]

    if not missing():
        return
    db.execute("BEGIN IMMEDIATE")
    try:
        for name, kind in missing():  # another process may have added some while we waited
            db.execute(f"ALTER TABLE steps ADD COLUMN {name} {kind}")
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


def _ensure_text_index(db: sqlite3.Connection) -> bool:
    """Create the free-text index if this SQLite can and the store lacks it (a store made by
    an earlier toolrun is indexed once, here). False when SQLite has no trigram FTS5."""

    def exists() -> bool:
        query = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'runs_text'"
        return db.execute(query).fetchone() is not None

    if exists():
        return True
    try:
        db.executescript(f"BEGIN IMMEDIATE;\n{_TEXT_INDEX}\nCOMMIT;")
    except sqlite3.OperationalError:
        if db.in_transaction:
            db.execute("ROLLBACK")
        # Another process made it first, or this SQLite lacks FTS5's trigram tokenizer.
        return exists()
    return True


def _like(text: str) -> str:
    """A LIKE pattern matching ``text`` anywhere, its own % and _ taken literally."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _history_filters(query: HistoryQuery, *, indexed: bool = False) -> tuple[list[str], list[Any]]:
    clauses: list[str] = []
    values: list[Any] = []
    if query.status:
        clauses.append("status = ?")
        values.append(query.status)
    if query.toolchain:
        clauses.append("toolchain = ?")
        values.append(query.toolchain)
    if query.since is not None:
        clauses.append("created_at >= ?")
        values.append(query.since)
    if query.until is not None:
        clauses.append("created_at < ?")
        values.append(query.until)
    if query.requester:
        clauses.append("requester = ?")
        values.append(query.requester)
    if query.before is not None:
        clauses.append("(created_at < ? OR (created_at = ? AND seq < ?))")
        values.extend([query.before[0], query.before[0], query.before[1]])
    if query.text and indexed:
        clauses.append("rowid IN (SELECT rowid FROM runs_text WHERE runs_text MATCH ?)")
        values.append('"' + query.text.replace('"', '""') + '"')
    elif query.text:
        clauses.append(
            "(id LIKE ? ESCAPE '\\' OR toolchain LIKE ? ESCAPE '\\'"
            " OR requester LIKE ? ESCAPE '\\' OR params LIKE ? ESCAPE '\\')"
        )
        values.extend([_like(query.text)] * 4)
    return clauses, values


def _run_from_row(row: sqlite3.Row) -> RunRecord:
    return RunRecord(
        id=row["id"],
        toolchain=row["toolchain"],
        status=row["status"],
        origin=row["origin"],
        requester=row["requester"],
        params=json.loads(row["params"]),
        created_at=row["created_at"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
        exit_code=row["exit_code"],
        error=row["error"],
        owner_pid=row["owner_pid"],
        owner_host=row["owner_host"],
        cancel_requested=bool(row["cancel_requested"]),
        toolchain_sha256=row["toolchain_sha256"],
        rerun_of=row["rerun_of"],
        size_bytes=row["size_bytes"],
    )


def _step_from_row(row: sqlite3.Row) -> StepRecord:
    return StepRecord(
        run_id=row["run_id"],
        step_id=row["step_id"],
        position=row["position"],
        tool=row["tool"],
        spec=row["spec"],
        version=row["version"],
        sha256=row["sha256"],
        status=row["status"],
        attempts=row["attempts"],
        exit_code=row["exit_code"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
        outputs=json.loads(row["outputs"]),
        error=row["error"],
        allowed_failure=bool(row["allowed_failure"]),
    )


def host_name() -> str:
    return platform_node() or "localhost"


def platform_node() -> str:
    if hasattr(os, "uname"):
        return str(os.uname().nodename)
    return os.environ.get("COMPUTERNAME", "")


def delete_in_background(folder: Path) -> None:
    """Delete ``folder`` from a detached process that outlives this one."""
    import subprocess
    import sys

    code = "import shutil, sys; shutil.rmtree(sys.argv[1], ignore_errors=True)"
    options: dict[str, Any] = {}
    if sys.platform == "win32":
        options["creationflags"] = subprocess.DETACHED_PROCESS
    else:
        options["start_new_session"] = True
    subprocess.Popen(
        [sys.executable, "-c", code, str(folder)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        **options,
    )
