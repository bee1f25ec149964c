"""The notification outbox in the store: a row per (run, channel), written when the run ends,
holding what the message will say; senders claim due rows for a while (a lease), so several
daemons on one store, or a terminal and a daemon, never send one row at once.

A row is marked sent only after its channel answered yes. A sender killed between that answer
and the mark would send it again once its lease ran out: the only way a message is sent
twice, and ``webhook`` receivers can tell by ``X-Toolrun-Delivery``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from ..records import record

# `typing` costs milliseconds at start-up; annotations alone never need it at run time.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from ..history.model import RunRecord
    from ..history.store import Store
    from .channels import Channel, Notifications

LAST_LINES = 10  # of the failed step's output, in the message
LINE_CHARS = 200
TAIL_BYTES = 256 * 1024  # of events.jsonl read for them: a run's log may be a gigabyte
TESTS = "test"  # the run id of `toolrun notify test` rows


@record(frozen=True)
class Delivery:
    id: int
    run_id: str
    channel: str
    event: str
    facts: dict[str, Any]
    status: str
    attempts: int
    created_at: float
    next_at: float
    last_error: str | None = None
    sent_at: float | None = None


def _delivery(row: Any) -> Delivery:
    return Delivery(
        row["id"],
        row["run_id"],
        row["channel"],
        row["event"],
        json.loads(row["facts"]),
        row["status"],
        row["attempts"],
        row["created_at"],
        row["next_at"],
        row["last_error"],
        row["sent_at"],
    )


class Outbox:
    def __init__(self, store: Store) -> None:
        self.store = store

    def record_run(
        self, run: RunRecord, notifications: Notifications, *, adhoc: bool = False
    ) -> list[str]:
        """The deliveries a run's ending makes, recorded; the channels' names."""
        event = self.event_of(run)
        targets = notifications.targets(run.toolchain, event, adhoc=adhoc)
        if not targets:
            return []
        facts = facts_of(self.store, run, event)
        now = time.time()
        with self.store.connect(write=True) as db:
            db.executemany(
                "INSERT OR IGNORE INTO outbox (run_id, channel, event, facts, created_at, next_at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                [
                    (run.id, channel.name, event, _facts_json(facts, mention), now, now)
                    for channel, mention in targets
                ],
            )
        return [channel.name for channel, _ in targets]

    def record_test(self, channel: Channel) -> Delivery:
        now = time.time()
        facts = {"event": "test", "run_id": None, "toolchain": None, "at": now}
        with self.store.connect(write=True) as db:
            cursor = db.execute(
                "INSERT INTO outbox (run_id, channel, event, facts, created_at, next_at) "
                "VALUES (?, ?, 'test', ?, ?, ?)",
                (f"{TESTS}-{now:.6f}", channel.name, _facts_json(facts, channel.mention), now, now),
            )
            row = db.execute("SELECT * FROM outbox WHERE id = ?", (cursor.lastrowid,)).fetchone()
        return _delivery(row)

    def event_of(self, run: RunRecord) -> str:
        """How a run ended, as rules name it: a success after a failure is ``recovered``."""
        if run.status != "succeeded":
            return run.status
        with self.store.connect() as db:
            row = db.execute(
                "SELECT status FROM runs WHERE toolchain = ? AND id != ? AND finished_at <= ? "
                "AND status IN ('succeeded', 'failed', 'timed_out') "
                "ORDER BY finished_at DESC LIMIT 1",
                (run.toolchain, run.id, run.finished_at or time.time()),
            ).fetchone()
        return "recovered" if row is not None and row["status"] != "succeeded" else "succeeded"

    def claim(self, lease: float, *, limit: int = 20, run_id: str | None = None) -> list[Delivery]:
        """Due deliveries, held for ``lease`` seconds by this sender."""
        now = time.time()
        where = "status = 'pending' AND next_at <= ? AND lease_until <= ?"
        args: list[Any] = [now, now]
        if run_id is not None:
            where += " AND run_id = ?"
            args.append(run_id)
        with self.store.connect(write=True) as db:
            rows = db.execute(
                f"UPDATE outbox SET lease_until = ? WHERE id IN (SELECT id FROM outbox "
                f"WHERE {where} ORDER BY next_at LIMIT ?) RETURNING *",
                (now + lease, *args, limit),
            ).fetchall()
        return [_delivery(row) for row in rows]

    def sent(self, delivery: Delivery) -> None:
        self._settle(delivery, "status = 'sent', sent_at = ?, last_error = NULL", time.time())

    def retry(self, delivery: Delivery, at: float, error: str) -> None:
        self._settle(delivery, "next_at = ?, last_error = ?", at, error)

    def give_up(self, delivery: Delivery, error: str) -> None:
        self._settle(delivery, "status = 'failed', last_error = ?", error)

    def _settle(self, delivery: Delivery, change: str, *args: Any) -> None:
        with self.store.connect(write=True) as db:
            db.execute(
                f"UPDATE outbox SET {change}, attempts = attempts + 1, lease_until = 0 "
                "WHERE id = ?",
                (*args, delivery.id),
            )

    def deliveries(self, statuses: tuple[str, ...], limit: int = 200) -> list[Delivery]:
        marks = ", ".join("?" for _ in statuses)
        with self.store.connect() as db:
            rows = db.execute(
                f"SELECT * FROM outbox WHERE status IN ({marks}) ORDER BY id DESC LIMIT ?",
                (*statuses, limit),
            ).fetchall()
        return [_delivery(row) for row in rows]

    def next_due(self) -> float | None:
        with self.store.connect() as db:
            row = db.execute(
                "SELECT MIN(MAX(next_at, lease_until)) AS at FROM outbox WHERE status = 'pending'"
            ).fetchone()
        return None if row is None or row["at"] is None else float(row["at"])


def _facts_json(facts: dict[str, Any], mention: tuple[str, ...]) -> str:
    return json.dumps({**facts, "mention": list(mention)}, ensure_ascii=False)


def facts_of(store: Store, run: RunRecord, event: str) -> dict[str, Any]:
    """What a message about ``run`` says, fixed as the run ends."""
    failed = next(
        (s for s in store.steps(run.id) if s.status in ("failed", "timed_out", "worker_lost")),
        None,
    )
    facts: dict[str, Any] = {
        "event": event,
        "run_id": run.id,
        "toolchain": run.toolchain,
        "status": run.status,
        "origin": run.origin,
        "requester": run.requester,
        "started_at": run.started_at,
        "finished_at": run.finished_at,
        "duration": (
            round(run.finished_at - run.started_at, 3)
            if run.finished_at and run.started_at
            else None
        ),
        "exit_code": run.exit_code,
        "error": run.error,
        "failed_step": failed.step_id if failed else None,
        "failed_exit": failed.exit_code if failed else None,
        "last_lines": last_lines(store.run_dir(run.id) / "events.jsonl", failed.step_id)
        if failed
        else [],
    }
    return facts


def last_lines(path: Path, step: str, count: int = LAST_LINES) -> list[str]:
    """The last lines a step wrote, from the end of the run's events only."""
    try:
        with path.open("rb") as file:
            size = file.seek(0, 2)
            file.seek(max(0, size - TAIL_BYTES))
            tail = file.read()
    except OSError:
        return []
    found: list[str] = []
    for raw in tail.splitlines()[1 if len(tail) >= TAIL_BYTES else 0 :]:
        try:
            event = json.loads(raw)
        except ValueError:
            continue
        if event.get("kind") == "output" and event.get("step") == step:
            found.extend(str(line)[:LINE_CHARS] for line in event.get("lines", []))
            del found[:-count]
    return found
