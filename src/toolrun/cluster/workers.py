"""The workers in the cluster as toolrun sees them: name, address, labels, slots, heartbeat.

A worker says its labels and slots when it joins (Dask's startup information, under
``spec.LABELS_KEY``); Dask workers that are not toolrun's say nothing and get no steps. With
the scheduler in the daemon, its tables are read directly and a scheduler plugin says when
workers come and go; with one elsewhere, its identity is asked for, at most every
``REFRESH_SECONDS``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import TYPE_CHECKING, Any

from ..records import field, record
from .spec import LABELS_KEY

if TYPE_CHECKING:
    from distributed import Client, Scheduler

REFRESH_SECONDS = 0.5


@record(frozen=True)
class WorkerInfo:
    name: str
    address: str
    labels: dict[str, str] = field(default_factory=dict)
    slots: int = 1
    last_seen: float = 0.0  # the time of its last heartbeat (seconds since the epoch)
    state: str = "running"  # Dask's: running, paused, closing, ...
    version: str = ""  # the toolrun it runs


def worker_info(address: str, raw: dict[str, Any]) -> WorkerInfo | None:
    """A worker from the scheduler's description of it; None if it is not toolrun's."""
    own = raw.get(LABELS_KEY)
    if not isinstance(own, dict) or not isinstance(own.get("labels"), dict):
        return None
    return WorkerInfo(
        name=str(raw.get("name") or address),
        address=address,
        labels={str(k): str(v) for k, v in own["labels"].items()},
        slots=int(own.get("slots") or 1),
        last_seen=float(raw.get("last_seen") or 0.0),
        state=str(raw.get("status") or "running"),
        version=str(own.get("version") or ""),
    )


class WorkerBook:
    """The cluster's toolrun workers, kept fresh enough to route by."""

    def __init__(self, client: Client, scheduler: Scheduler | None = None) -> None:
        self.client = client
        self.scheduler = scheduler
        self._cache: list[WorkerInfo] = []
        self._asked = 0.0
        self._changed = asyncio.Event()
        self.joined = 0
        self.left = 0
        if scheduler is not None:
            scheduler.add_plugin(_Membership(self), name="toolrun-membership")

    def cached(self) -> list[WorkerInfo]:
        return list(self._cache)

    def name_of(self, address: str) -> str:
        """A worker's name for messages (its address when it is not known, or gone)."""
        return next((w.name for w in self._cache if w.address == address), address)

    async def workers(self) -> list[WorkerInfo]:
        if self.scheduler is not None:
            found = []
            for address, state in list(self.scheduler.workers.items()):
                raw = {
                    "name": state.name,
                    "last_seen": state.last_seen,
                    "status": state.status.name,
                    **state.extra,
                }
                info = worker_info(address, raw)
                if info is not None:
                    found.append(info)
            self._cache = found
            return found
        if self.client.status != "running":
            self._cache = []  # the scheduler elsewhere is lost (or being reconnected to)
            return []
        if time.monotonic() - self._asked >= REFRESH_SECONDS:
            try:
                identity = await self.client.scheduler.identity(n_workers=-1)
            except OSError:
                self._cache = []
                return []
            self._asked = time.monotonic()
            workers = identity.get("workers", {})
            self._cache = [
                info
                for address, raw in workers.items()
                if (info := worker_info(address, raw)) is not None
            ]
        return list(self._cache)

    def note_change(self) -> None:
        self._changed.set()

    async def changed(self, timeout: float) -> None:
        """Wait until workers came or went (or ``timeout`` seconds, with a scheduler
        elsewhere, which says nothing of it)."""
        self._changed.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._changed.wait(), timeout)


class _Membership:
    """Tells the book when a worker joins or leaves the scheduler in this process."""

    def __init__(self, book: WorkerBook) -> None:
        self.book = book

    def add_worker(self, scheduler: Scheduler, worker: str) -> None:
        self.book.joined += 1
        self.book.note_change()

    def remove_worker(self, scheduler: Scheduler, worker: str, **kwargs: Any) -> None:
        self.book.left += 1
        self.book.note_change()
