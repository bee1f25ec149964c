"""A run and its steps as the history keeps them: the records, their states, their ids, and
how a row of ``history.db`` becomes one."""

from __future__ import annotations

import json
import re
import time

from ..errors import NotFoundError
from ..records import field, record

# `typing` costs milliseconds at start-up; annotations alone never need it at run time.
TYPE_CHECKING = False
if TYPE_CHECKING:
    import sqlite3
    from typing import Any

RUN_ID_RE = re.compile(r"[0-9]{14}-[0-9]{1,9}")  # ASCII digits; used with fullmatch
ACTIVE = ("queued", "running", "paused")
RUN_STATES = (
    "queued",
    "running",
    "paused",
    "succeeded",
    "failed",
    "cancelled",
    "timed_out",
    "interrupted",
)
STEP_STATES = (
    "pending",
    "running",
    "succeeded",
    "failed",
    "skipped",
    "cancelled",
    "timed_out",
    "worker_lost",
)


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
    workers: list[str | None] = field(default_factory=list)  # each attempt's, on a cluster

    @property
    def duration(self) -> float | None:
        return elapsed(self.started_at, self.finished_at)

    @property
    def worker(self) -> str | None:
        """The cluster worker its last attempt ran on."""
        return self.workers[-1] if self.workers else None


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
    priority: int = 0
    lock_sha256: str | None = None  # the lock a --locked run kept to

    @property
    def is_active(self) -> bool:
        return self.status in ACTIVE

    @property
    def duration(self) -> float | None:
        return elapsed(self.started_at, self.finished_at)


def check_run_id(run_id: str) -> str:
    """Only well-formed ids ever reach SQL or a path."""
    if not RUN_ID_RE.fullmatch(run_id):
        raise NotFoundError(f"{run_id!r} is not a run id (they look like 20250208123359-1)")
    return run_id


def run_from_row(row: sqlite3.Row) -> RunRecord:
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
        priority=row["priority"],
        lock_sha256=row["lock_sha256"],
    )


def step_from_row(row: sqlite3.Row) -> StepRecord:
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
        workers=json.loads(row["workers"] or "[]"),
    )
