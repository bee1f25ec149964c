"""The schedules' and hooks' rows in the store: fires claimed once across every daemon on the
store, a schedule paused, a hook delivery seen (a replay refused).

A fire is claimed by inserting its row (schedule, fire time): SQLite's write lock and the
primary key let exactly one process insert it, so two daemons on one store never both fire
one time, and neither needs to know of the other.
"""

from __future__ import annotations

import time

from ..history.model import ACTIVE
from ..history.store import Store
from ..records import record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


@record(frozen=True)
class ScheduleState:
    name: str
    first_seen: float
    paused: bool = False


@record(frozen=True)
class Fire:
    """A schedule's fire as recorded, with the status of the run it started (if any)."""

    name: str
    due: float
    fired_at: float
    outcome: str
    run_id: str | None = None
    detail: str | None = None
    run_status: str | None = None


def _fire(row: Any) -> Fire:
    return Fire(
        row["name"],
        row["due"],
        row["fired_at"],
        row["outcome"],
        row["run_id"],
        row["detail"],
        row["run_status"],
    )


class Ledger:
    def __init__(self, store: Store) -> None:
        self.store = store

    # -- schedules -----------------------------------------------------------------------------

    def states(self, names: list[str], now: float | None = None) -> dict[str, ScheduleState]:
        """Each schedule's state, recording the ones seen for the first time."""
        now = time.time() if now is None else now
        with self.store.connect(write=True) as db:
            db.executemany(
                "INSERT OR IGNORE INTO schedule_state (name, first_seen) VALUES (?, ?)",
                [(name, now) for name in names],
            )
            rows = db.execute("SELECT name, first_seen, paused FROM schedule_state").fetchall()
        return {
            row["name"]: ScheduleState(row["name"], row["first_seen"], bool(row["paused"]))
            for row in rows
            if row["name"] in names
        }

    def paused(self) -> set[str]:
        with self.store.connect() as db:
            rows = db.execute("SELECT name FROM schedule_state WHERE paused = 1").fetchall()
        return {row["name"] for row in rows}

    def set_paused(self, name: str, paused: bool) -> None:
        with self.store.connect(write=True) as db:
            db.execute(
                "INSERT INTO schedule_state (name, first_seen, paused) VALUES (?, ?, ?) "
                "ON CONFLICT (name) DO UPDATE SET paused = excluded.paused",
                (name, time.time(), int(paused)),
            )

    def claim(self, name: str, due: float, now: float | None = None) -> bool:
        """True for the one process that gets to fire ``name`` for the time ``due``."""
        now = time.time() if now is None else now
        with self.store.connect(write=True) as db:
            cursor = db.execute(
                "INSERT OR IGNORE INTO schedule_fires (name, due, fired_at, outcome) "
                "VALUES (?, ?, ?, 'claimed')",
                (name, due, now),
            )
            return cursor.rowcount == 1

    def settle(
        self, name: str, due: float, outcome: str, run_id: str | None = None, detail: str = ""
    ) -> None:
        with self.store.connect(write=True) as db:
            db.execute(
                "UPDATE schedule_fires SET outcome = ?, run_id = ?, detail = ? "
                "WHERE name = ? AND due = ?",
                (outcome, run_id, detail or None, name, due),
            )

    def last_fires(self) -> dict[str, Fire]:
        """Each schedule's latest fire, with its run's status."""
        query = (
            "SELECT f.*, r.status AS run_status FROM schedule_fires f "
            "LEFT JOIN runs r ON r.id = f.run_id "
            "WHERE f.due = (SELECT MAX(due) FROM schedule_fires g WHERE g.name = f.name)"
        )
        with self.store.connect() as db:
            rows = db.execute(query).fetchall()
        return {row["name"]: _fire(row) for row in rows}

    def fires(self, name: str) -> list[Fire]:
        with self.store.connect() as db:
            rows = db.execute(
                "SELECT f.*, r.status AS run_status FROM schedule_fires f "
                "LEFT JOIN runs r ON r.id = f.run_id WHERE f.name = ? ORDER BY f.due",
                (name,),
            ).fetchall()
        return [_fire(row) for row in rows]

    def active_runs(self, origin: str, requester: str) -> list[str]:
        """The runs started by this schedule or hook that are still going, in any process."""
        marks = ", ".join("?" for _ in ACTIVE)
        with self.store.connect() as db:
            rows = db.execute(
                f"SELECT id FROM runs WHERE origin = ? AND requester = ? AND status IN ({marks}) "
                "ORDER BY created_at",
                (origin, requester, *ACTIVE),
            ).fetchall()
        return [row["id"] for row in rows]

    # -- hooks ---------------------------------------------------------------------------------

    def first_delivery(self, hook: str, signature: str, keep: float) -> bool:
        """Record a delivery's signature; False when it was seen within ``keep`` seconds."""
        now = time.time()
        with self.store.connect(write=True) as db:
            db.execute("DELETE FROM hook_deliveries WHERE seen_at < ?", (now - keep,))
            cursor = db.execute(
                "INSERT OR IGNORE INTO hook_deliveries (hook, signature, seen_at) VALUES (?, ?, ?)",
                (hook, signature, now),
            )
            return cursor.rowcount == 1

    def forget_delivery(self, hook: str, signature: str) -> None:
        """A delivery that was not taken after all (the run could not start)."""
        with self.store.connect(write=True) as db:
            db.execute(
                "DELETE FROM hook_deliveries WHERE hook = ? AND signature = ?", (hook, signature)
            )
