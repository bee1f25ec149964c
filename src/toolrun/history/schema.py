"""The tables of ``history.db``, and how a store made by an earlier toolrun catches up: the
columns added since, and the free-text index, each created once by whichever process comes
first."""

from __future__ import annotations

import sqlite3

SCHEMA = """
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
    size_bytes INTEGER NOT NULL DEFAULT 0,
    priority INTEGER NOT NULL DEFAULT 0,
    lock_sha256 TEXT  -- the lock a --locked run kept to (tools/lockfile.py)
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
-- automation/: what the daemons on this store fired, and whom they told (automation/ledger.py)
CREATE TABLE IF NOT EXISTS schedule_state (
    name TEXT PRIMARY KEY,
    first_seen REAL NOT NULL,  -- missed times before it existed are not caught up
    paused INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS schedule_fires (
    name TEXT NOT NULL,
    due REAL NOT NULL,  -- the fire time: one row, so one fire, whichever daemon claims it
    fired_at REAL NOT NULL,
    outcome TEXT NOT NULL,  -- claimed, started, skipped, paused, failed
    run_id TEXT,
    detail TEXT,
    PRIMARY KEY (name, due)
);
CREATE TABLE IF NOT EXISTS hook_deliveries (
    hook TEXT NOT NULL,
    signature TEXT NOT NULL,  -- sha256 of what identifies a delivery: a replay is refused
    seen_at REAL NOT NULL,
    PRIMARY KEY (hook, signature)
);
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY,
    run_id TEXT NOT NULL,
    channel TEXT NOT NULL,
    event TEXT NOT NULL,  -- failed, timed_out, succeeded, recovered, cancelled, test
    facts TEXT NOT NULL,  -- JSON: what the message says, fixed when the run ended
    status TEXT NOT NULL DEFAULT 'pending',  -- pending, sent, failed
    attempts INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL,
    next_at REAL NOT NULL,
    lease_until REAL NOT NULL DEFAULT 0,  -- a sender holds it until then
    last_error TEXT,
    sent_at REAL,
    UNIQUE (run_id, channel, event)
);
CREATE INDEX IF NOT EXISTS outbox_due ON outbox (status, next_at);
"""

# Free text is found through a trigram index: a LIKE over a million runs reads all of them
# when the text is rare (about a second); the index answers in milliseconds. It follows the
# runs table through triggers, and only the columns a person searches are in it.
TEXT_INDEX = """
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

LATER_COLUMNS = (  # (table, column, type)
    ("steps", "pid", "INTEGER"),
    ("steps", "pid_started", "REAL"),
    ("steps", "cgroup", "TEXT"),
    ("steps", "workers", "TEXT"),  # JSON: the cluster worker of each attempt
    ("runs", "priority", "INTEGER NOT NULL DEFAULT 0"),
    # pause and resume from any process: a request number times 4, plus what is wanted
    # (0 go on, 1 pause, 2 pause and freeze the running steps); see Store.request_pause.
    ("runs", "control", "INTEGER NOT NULL DEFAULT 0"),
    ("runs", "lock_sha256", "TEXT"),
)


def create_schema(db: sqlite3.Connection) -> bool:
    """The tables, brought up to date; True when the free-text index is there too."""
    db.executescript(SCHEMA)
    add_later_columns(db)
    return ensure_text_index(db)


def has_text_index(db: sqlite3.Connection) -> bool:
    query = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'runs_text'"
    return db.execute(query).fetchone() is not None


def add_later_columns(db: sqlite3.Connection) -> None:
    """Stores made before a column was added get it, once."""

    def missing() -> list[tuple[str, str, str]]:
        have = {
            (table, row[1])
            for table in ("runs", "steps")
            for row in db.execute(f"PRAGMA table_info({table})")
        }
        return [column for column in LATER_COLUMNS if column[:2] not in have]

    if not missing():
        return
    db.execute("BEGIN IMMEDIATE")
    try:
        for table, name, kind in missing():  # another process may have added some meanwhile
            db.execute(f"ALTER TABLE {table} ADD COLUMN {name} {kind}")
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


def ensure_text_index(db: sqlite3.Connection) -> bool:
    """Create the free-text index if this SQLite can and the store lacks it (a store made by
    an earlier toolrun is indexed once, here). False when SQLite has no trigram FTS5."""
    if has_text_index(db):
        return True
    try:
        db.executescript(f"BEGIN IMMEDIATE;\n{TEXT_INDEX}\nCOMMIT;")
    except sqlite3.OperationalError:
        if db.in_transaction:
            db.execute("ROLLBACK")
        # Another process made it first, or this SQLite lacks FTS5's trigram tokenizer.
        return has_text_index(db)
    return True
