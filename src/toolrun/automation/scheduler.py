"""The daemon's scheduler: fires each schedule at its times, once across every daemon on the
store, by the schedule's overlap policy; after downtime, once for a time missed within its
catch-up window, never a storm.

It knows nothing of HTTP: the daemon hands it a ``Starter`` (start a run, cancel one, wait
for one to end) and reads what it did from the journal and the ledger.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from typing import Protocol

from ..errors import ToolrunError
from ..schedules import Schedule
from .catalog import Catalog
from .ledger import Ledger

RELOAD_SECONDS = 5.0  # how soon an edited toolchain's schedule is seen
TICK_SECONDS = 1.0  # the longest sleep: a pause or a reload is noticed within it
CANCEL_WAIT = 60.0  # cancel_previous: how long the previous run may take to stop


class Starter(Protocol):
    async def start(self, schedule: Schedule) -> str: ...

    def cancel(self, run_id: str) -> None: ...

    async def ended(self, run_id: str) -> None: ...


class Scheduler:
    def __init__(
        self,
        catalog: Callable[[], Awaitable[Catalog]],
        ledger: Ledger,
        starter: Starter,
        log: Callable[..., None],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.catalog = catalog
        self.ledger = ledger
        self.starter = starter
        self.log = log
        self.clock = clock
        self.schedules: dict[str, Schedule] = {}
        self.cursor: dict[str, float] = {}  # each schedule: times up to here are handled
        self.waiting: set[str] = set()  # schedules with a queued fire (overlap: queue)
        self._tasks: set[asyncio.Task[None]] = set()
        self._problems: tuple[str, ...] = ()

    async def run(self) -> None:
        """Until cancelled."""
        reloaded = -RELOAD_SECONDS
        try:
            while True:
                now = self.clock()
                try:
                    if now - reloaded >= RELOAD_SECONDS:
                        await self.reload(now)
                        reloaded = now
                    await self.tick(now)
                except ToolrunError as exc:  # the store, full or damaged: said, and tried again
                    self.log("schedule_problem", problem=exc.message)
                    reloaded = now
                await asyncio.sleep(self.sleep_for(self.clock()))
        finally:
            for task in list(self._tasks):
                task.cancel()

    async def reload(self, now: float) -> None:
        catalog = await self.catalog()
        if catalog.problems != self._problems:
            for problem in catalog.problems:
                self.log("schedule_problem", problem=problem)
            self._problems = catalog.problems
        found = {schedule.name: schedule for schedule in catalog.schedules}
        states = await asyncio.to_thread(self.ledger.states, list(found), now)
        for name, schedule in found.items():
            if name not in self.schedules:
                self.cursor[name] = now
                self.log("schedule", name=name, cron=schedule.when.text, source=schedule.source)
                self.catch_up(schedule, now, states[name].first_seen)
        self.schedules = found

    def catch_up(self, schedule: Schedule, now: float, first_seen: float) -> None:
        """A time missed while no daemon was watching, within the window: fired once."""
        if not schedule.catch_up:
            return
        since = max(first_seen, now - schedule.catch_up)
        missed = schedule.when.last_at_or_before(now, schedule.zone(), since)
        if missed is not None:
            self._spawn(self.fire(schedule, missed, caught_up=True))

    async def tick(self, now: float) -> None:
        for name, schedule in self.schedules.items():
            due = schedule.when.last_at_or_before(now, schedule.zone(), self.cursor[name])
            self.cursor[name] = now
            if due is not None:
                self._spawn(self.fire(schedule, due))

    def sleep_for(self, now: float) -> float:
        soonest = min(
            (s.next_after(self.cursor.get(n, now)) for n, s in self.schedules.items()),
            default=now + TICK_SECONDS,
        )
        return max(0.01, min(TICK_SECONDS, soonest - now))

    def _spawn(self, work: Awaitable[None]) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def fire(self, schedule: Schedule, due: float, *, caught_up: bool = False) -> None:
        """Fire ``schedule`` for its time ``due``, if this daemon is the one to claim it."""
        try:
            await self._fire(schedule, due, caught_up)
        except ToolrunError as exc:
            self.log("schedule_failed", name=schedule.name, due=due, error=exc.message)

    async def _fire(self, schedule: Schedule, due: float, caught_up: bool) -> None:
        ledger = self.ledger
        if not await asyncio.to_thread(ledger.claim, schedule.name, due):
            return
        name = schedule.name
        if name in await asyncio.to_thread(ledger.paused):
            await asyncio.to_thread(ledger.settle, name, due, "paused")
            return
        if name in self.waiting and schedule.overlap != "cancel_previous":
            # A fire of this daemon is waiting for the last run or starting its own: between
            # the two the store shows no run going, which must not let a third start.
            detail = (
                "a fire is already waiting for the last run to end"
                if schedule.overlap == "queue"
                else "its last run is still going (starting)"
            )
            await asyncio.to_thread(ledger.settle, name, due, "skipped", None, detail)
            return
        active = await asyncio.to_thread(ledger.active_runs, "schedule", name)
        if active and schedule.overlap == "skip":
            detail = f"run {active[-1]} is still going"
            await asyncio.to_thread(ledger.settle, name, due, "skipped", None, detail)
            self.log("schedule_skipped", name=name, due=due, reason=detail)
            return
        self.waiting.add(name)
        try:
            await self._start(schedule, due, active, caught_up)
        finally:
            self.waiting.discard(name)

    async def _start(
        self, schedule: Schedule, due: float, active: list[str], caught_up: bool
    ) -> None:
        ledger, name = self.ledger, schedule.name
        if active and schedule.overlap == "queue":
            await asyncio.to_thread(ledger.settle, name, due, "queued", None, f"after {active[-1]}")
            for run_id in active:
                await self.starter.ended(run_id)
        if active and schedule.overlap == "cancel_previous":
            for run_id in active:
                self.starter.cancel(run_id)
            for run_id in active:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.starter.ended(run_id), CANCEL_WAIT)
        try:
            run_id = await self.starter.start(schedule)
        except ToolrunError as exc:
            await asyncio.to_thread(ledger.settle, name, due, "failed", None, exc.message)
            self.log("schedule_failed", name=name, due=due, error=exc.message)
            return
        await asyncio.to_thread(ledger.settle, name, due, "started", run_id)
        self.log("schedule_fired", name=name, due=due, run=run_id, caught_up=caught_up)
