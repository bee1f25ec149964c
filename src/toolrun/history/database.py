"""``history.db``'s one connection: WAL, SQLite's write lock taken up front, a read-only
fallback for a full disk, damage named as such, and checkpoints off the writer's path.

Several toolrun processes (CLI, TUI, daemon) share one database. Writes take SQLite's write
lock up front (BEGIN IMMEDIATE) and wait for it (busy timeout), so none sees "database is
locked".
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading

from ..errors import StorageError
from . import schema

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

WAL_RESTART_FRAMES = 1000  # pages in the log before the daemon's checkpoints start it over


class Database:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._db: sqlite3.Connection | None = None
        self._lock = threading.RLock()
        self._text_index = False
        self._stop_checkpoints = threading.Event()
        # Why the database could be opened only for reading (a full disk), or "" when it can
        # be written.
        self.read_only = ""

    @contextlib.contextmanager
    def connect(self, *, write: bool = False) -> Iterator[sqlite3.Connection]:
        """The one connection, under a lock; ``write`` holds SQLite's write lock.

        One connection for the life of the Store: closing the last connection to a WAL
        database checkpoints it, which made every small update cost milliseconds.
        """
        with self._lock:
            db = self._open()
            if write and self.read_only:
                raise StorageError(
                    f"{self.path} can only be read: {self.read_only}",
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

    def has_text_index(self) -> bool:
        """Whether the free-text index is there (SQLite may lack trigram FTS5)."""
        with self.connect():
            return self._text_index

    def _error(self, exc: sqlite3.Error, doing: str = "") -> StorageError:
        if is_damage(exc):
            return StorageError(
                f"{self.path} is damaged ({exc})",
                hint="toolrun history repair rebuilds it from the run folders (their "
                "events.jsonl), keeping the damaged file aside",
            )
        return StorageError(f"{doing}{self.path}: {exc}")

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
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # Used from the event loop and from its executor threads, always under _lock.
        db = sqlite3.connect(self.path, timeout=60, isolation_level=None, check_same_thread=False)
        try:
            db.row_factory = sqlite3.Row
            db.execute("PRAGMA busy_timeout = 60000")
            db.execute("PRAGMA journal_mode = WAL")
            db.execute("PRAGMA synchronous = NORMAL")
            self._text_index = schema.create_schema(db)
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
            if not self.path.is_file() or self.path.stat().st_size == 0:
                raise StorageError(f"cannot open {self.path}: {reason}")
            from urllib.parse import quote

            uri = f"file:{quote(str(self.path.absolute()))}?mode=ro&immutable=1"
            db = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
            db.row_factory = sqlite3.Row
            db.execute("SELECT 1 FROM runs LIMIT 1").fetchall()
            self._text_index = schema.has_text_index(db)
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
        db = sqlite3.connect(self.path, timeout=0, isolation_level=None)
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


def is_damage(exc: sqlite3.Error) -> bool:
    """SQLite says the file is not a database, or one whose pages are damaged."""
    code = getattr(exc, "sqlite_errorcode", None)
    return code in (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB) or any(
        words in str(exc) for words in ("malformed", "not a database")
    )
