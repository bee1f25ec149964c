"""``toolrun history repair``: a new ``history.db`` built from the run folders.

A run folder's ``events.jsonl`` is the canonical record of the run (its ``run_started`` event
carries what the index keeps: toolchain, params, origin, requester, the tool versions and
their sha256); ``history.db`` is an index over the folders. When the index is damaged or
lost, it is moved aside, whatever can still be read from it is kept, and a new one is built
from the logs. A run whose log says less (one from before run_started carried all of it, or
one that never started) keeps what the old index had, and what its folder shows otherwise.
"""

from __future__ import annotations

import calendar
import contextlib
import os
import sqlite3
import time
from pathlib import Path
from typing import Any

from ..digests import sha256_hex
from ..records import record
from ..runs import events as ev
from ..runs.events import read_events
from .endings import INTERRUPTED
from .ownership import owner_alive
from .store import RUN_ID_RE, RunRecord, StepRecord, Store, host_name


@record(frozen=True)
class RepairReport:
    """What a repair did."""

    runs: int  # entries in the new index
    from_logs: int  # of which rebuilt from the run's log
    from_old_index: int  # of which the old index still had (the rest: what the folder shows)
    kept_aside: Path | None  # where the old index went


def repair(data_dir: Path) -> RepairReport:
    """Move ``history.db`` aside and build a new one from ``runs/*/``."""
    db_path = data_dir / "history.db"
    kept_aside = None
    old_runs: dict[str, dict[str, Any]] = {}
    old_steps: dict[str, list[dict[str, Any]]] = {}
    if db_path.exists():
        kept_aside = db_path.with_name(f"history.db.damaged-{time.strftime('%Y%m%d%H%M%S')}")
        os.replace(db_path, kept_aside)
        for suffix in ("-wal", "-shm"):
            side = Path(f"{db_path}{suffix}")
            if side.exists():
                os.replace(side, Path(f"{kept_aside}{suffix}"))
        old_runs, old_steps = salvage(kept_aside)
    store = Store(data_dir)
    try:
        runs_dir = data_dir / "runs"
        folders = sorted(
            entry.name
            for entry in (os.scandir(runs_dir) if runs_dir.is_dir() else ())
            if entry.is_dir() and RUN_ID_RE.fullmatch(entry.name)
        )
        from_logs = from_old = 0
        for run_id in folders:
            folder = runs_dir / run_id
            rebuilt = rebuild(run_id, folder, old_runs.get(run_id), old_steps.get(run_id, []))
            from_logs += rebuilt.from_log
            from_old += rebuilt.from_old and not rebuilt.from_log
            store.restore(rebuilt.run, rebuilt.steps)
    finally:
        store.close()
    return RepairReport(len(folders), from_logs, from_old, kept_aside)


def salvage(path: Path) -> tuple[dict[str, dict[str, Any]], dict[str, list[dict[str, Any]]]]:
    """The rows a damaged index still gives, read as far as each table can be read: the main
    file alone first (``immutable``: as it is, even when its -wal is what is damaged), then
    with its -wal, whose rows are newer (committed, not yet written back: a daemon had it open)."""
    runs: dict[str, dict[str, Any]] = {}
    steps: dict[str, list[dict[str, Any]]] = {}
    for options in ("mode=ro&immutable=1", "mode=ro"):
        more_runs, more_steps = _read(path, options)
        runs.update(more_runs)
        steps.update(more_steps)
    return runs, steps


def _read(
    path: Path, options: str
) -> tuple[dict[str, dict[str, Any]], dict[str, list[dict[str, Any]]]]:
    runs: dict[str, dict[str, Any]] = {}
    steps: dict[str, list[dict[str, Any]]] = {}
    try:
        db = sqlite3.connect(f"file:{path}?{options}", uri=True)
    except sqlite3.Error:
        return runs, steps
    db.row_factory = sqlite3.Row
    with contextlib.closing(db):
        with contextlib.suppress(sqlite3.Error):
            for row in db.execute("SELECT * FROM runs"):
                runs[row["id"]] = _decoded(dict(row), "params")
        with contextlib.suppress(sqlite3.Error):
            for row in db.execute("SELECT * FROM steps ORDER BY run_id, position"):
                steps.setdefault(row["run_id"], []).append(_decoded(dict(row), "outputs"))
    return runs, steps


def _decoded(row: dict[str, Any], column: str) -> dict[str, Any]:
    """The row with its JSON column read (an empty mapping where it cannot be)."""
    import json

    try:
        value = json.loads(row.get(column) or "{}")
    except ValueError:
        value = {}
    row[column] = value if isinstance(value, dict) else {}
    return row


@record(frozen=True)
class Rebuilt:
    run: RunRecord
    steps: list[StepRecord]
    from_log: bool
    from_old: bool


def rebuild(
    run_id: str, folder: Path, old: dict[str, Any] | None, old_steps: list[dict[str, Any]]
) -> Rebuilt:
    """One run's index entry from its folder, the old index's row filling what the log lacks."""
    log = list(read_events(folder / "events.jsonl"))
    started = next((e for e in log if e.kind == ev.RUN_STARTED), None)
    finished = next((e for e in log if e.kind == ev.RUN_FINISHED), None)
    info: dict[str, Any] = dict(old or {})
    if started is not None:
        data = started.data
        info.update(
            {k: data[k] for k in ("toolchain", "params", "origin", "requester") if k in data}
        )
        info.update(
            {
                k: data[k]
                for k in ("created_at", "toolchain_sha256", "rerun_of", "priority", "lock_sha256")
                if data.get(k)
            }
        )
        info["started_at"] = started.time
    if finished is not None:
        info.update(
            status=finished.data.get("status", "failed"),
            finished_at=finished.time,
            exit_code=finished.data.get("exit_code"),
            error=finished.data.get("error") or info.get("error"),
        )
    elif owner_alive(folder / "owner.lock"):
        info["status"] = info.get("status") or "running"
    elif info.get("status") in (None, "queued", "running"):
        info.update(status="interrupted", error=INTERRUPTED, exit_code=1)
        info.setdefault("finished_at", info.get("started_at") or _stamp_time(run_id))
    if "toolchain_sha256" not in info:
        with contextlib.suppress(OSError):
            info["toolchain_sha256"] = sha256_hex((folder / "toolchain.yaml").read_bytes())
    info.setdefault("toolchain", _toolchain_name(folder))
    run = RunRecord(
        id=run_id,
        toolchain=str(info.get("toolchain") or "unknown"),
        status=str(info["status"]),
        origin=str(info.get("origin") or "cli"),
        requester=str(info.get("requester") or ""),
        params=_mapping(info.get("params")),
        created_at=float(info.get("created_at") or _stamp_time(run_id)),
        started_at=info.get("started_at"),
        finished_at=info.get("finished_at"),
        exit_code=info.get("exit_code"),
        error=info.get("error"),
        owner_host=info.get("owner_host") or host_name(),
        toolchain_sha256=info.get("toolchain_sha256"),
        rerun_of=info.get("rerun_of"),
        size_bytes=_folder_size(folder),
        priority=int(info.get("priority") or 0),
        lock_sha256=info.get("lock_sha256"),
    )
    return Rebuilt(run, _steps(run, log, old_steps), started is not None, old is not None)


def _steps(
    run: RunRecord, log: list[ev.Event], old_steps: list[dict[str, Any]]
) -> list[StepRecord]:
    started = next((e for e in log if e.kind == ev.RUN_STARTED), None)
    finished = next((e for e in log if e.kind == ev.RUN_FINISHED), None)
    plan: list[dict[str, Any]] = list(started.data.get("plan") or []) if started else []
    if not plan and old_steps:
        plan = [
            {k: row.get(k) for k in ("tool", "spec", "version", "sha256")} | {"id": row["step_id"]}
            for row in old_steps
        ]
    if not plan and started is not None:
        plan = [{"id": step_id} for step_id in started.data.get("steps", [])]
    finals = finished.data.get("steps", {}) if finished else {}
    old = {row["step_id"]: row for row in old_steps}
    steps = []
    for position, entry in enumerate(plan):
        step_id = str(entry["id"])
        row = dict(old.get(step_id) or {})
        attempts = 0
        for event in log:
            if event.step != step_id:
                continue
            if event.kind == ev.STEP_STARTED:
                attempts = max(attempts, event.attempt or 1)
                row.setdefault("started_at", event.time)
                row.setdefault("tool", event.data.get("tool"))
                row.setdefault("version", event.data.get("version"))
            elif event.kind == ev.STEP_FINISHED:
                row.update(
                    status=event.data.get("status"),
                    exit_code=event.data.get("exit_code"),
                    error=event.data.get("error"),
                    outputs=event.data.get("outputs") or {},
                    finished_at=event.time,
                )
            elif event.kind == ev.STEP_SKIPPED:
                row.update(status=event.data.get("status"), error=event.data.get("reason"))
        status = finals.get(step_id) or row.get("status") or "pending"
        if run.status == "interrupted" and status in ("pending", "running"):
            status = "cancelled"
        outputs = {str(k): str(v) for k, v in _mapping(row.get("outputs")).items()}
        steps.append(
            StepRecord(
                run_id=run.id,
                step_id=step_id,
                position=position,
                tool=str(entry.get("tool") or row.get("tool") or ""),
                spec=str(entry.get("spec") or row.get("spec") or entry.get("tool") or ""),
                version=entry.get("version") or row.get("version"),
                sha256=entry.get("sha256") or row.get("sha256"),
                status=status,
                attempts=max(attempts, int(row.get("attempts") or 0)),
                exit_code=row.get("exit_code"),
                started_at=row.get("started_at"),
                finished_at=row.get("finished_at"),
                outputs=outputs,
                error=row.get("error"),
                # A step that failed in a run that did not was allowed to.
                allowed_failure=bool(row.get("allowed_failure"))
                or (status in ("failed", "timed_out", "worker_lost") and run.status == "succeeded"),
            )
        )
    return steps


def _mapping(value: Any) -> dict[str, Any]:
    return dict(value) if isinstance(value, dict) else {}


def _stamp_time(run_id: str) -> float:
    """When a run was made, from its id (``20250208123359-1``, UTC)."""
    stamp = run_id.split("-", 1)[0]
    return float(calendar.timegm(time.strptime(stamp, "%Y%m%d%H%M%S")))


def _toolchain_name(folder: Path) -> str:
    """A one-tool run's toolchain is named for its tool, which its snapshot's first line says."""
    from ..toolchains.model import ADHOC_MARK

    with contextlib.suppress(OSError, UnicodeDecodeError):
        first = (folder / "toolchain.yaml").read_text(encoding="utf-8").split("\n", 1)[0]
        if first.startswith(ADHOC_MARK):
            return first[len(ADHOC_MARK) :].split("@")[0].split("=")[0].strip() or "unknown"
    return "unknown"


def _folder_size(folder: Path) -> int:
    total = 0
    for root, _dirs, files in os.walk(folder):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(root, name)).st_size
    return total
