"""The daemon's runs: at most ``max_parallel`` at once, the rest in a bounded queue that
starts higher priorities first and equal ones in the order they came.

Preparing a run (resolving its tools, perhaps installing them, recording it) happens on the
loop when it reads only local folders, and in a worker thread when a tool must be installed or
a registry is remote, so a slow registry never holds up other requests; executing it is a task
on the loop. A run belongs to the daemon, not to the request that started it: a client that
goes away leaves its run going, and the run is recorded as every other.
"""

from __future__ import annotations

import asyncio
import bisect
import itertools
import time
from collections.abc import Callable
from typing import Any

from ..errors import ToolrunError
from ..history.store import RunRecord
from ..records import field, record
from ..runs.engine import Engine, RunHandle, RunOptions
from ..runs.events import RUN_FINISHED, RUN_PAUSED, RUN_RESUMED, Event
from ..toolchains.model import Toolchain
from ..tools.resolver import WouldInstall


class QueueFull(ToolrunError):
    """Every slot is busy and the queue holds as many runs as it may."""


class ShuttingDown(ToolrunError):
    """The daemon is stopping and takes no new runs."""


@record
class Transition:
    """A run changing state, as /api/v1/events and the logs report it."""

    run_id: str
    toolchain: str
    status: str
    requester: str
    at: float = field(default_factory=time.time)
    duration: float | None = None


class RunManager:
    def __init__(self, engine: Engine, *, max_parallel: int = 4, queue: int = 100) -> None:
        self.engine = engine
        self.max_parallel = max_parallel
        self.queue_size = queue
        self.live: dict[str, RunHandle] = {}  # queued or running in this daemon
        self.waiting: list[RunHandle] = []  # the next to start first
        self._order: dict[str, tuple[int, int]] = {}  # run id -> its place in ``waiting``
        self._arrivals = itertools.count()
        self.running: set[str] = set()
        self.paused: set[str] = set()  # running, but told to start no further step
        self.draining = False
        self._reserved = 0  # runs being prepared, counted against the queue
        self._tasks: set[asyncio.Task[RunRecord]] = set()
        self._ended: dict[str, asyncio.Event] = {}  # runs of this daemon, set as each ends
        self._listeners: list[Callable[[Transition], None]] = []

    # -- what callers see ----------------------------------------------------------------------

    def on_transition(self, listener: Callable[[Transition], None]) -> None:
        self._listeners.append(listener)

    def position(self, run_id: str) -> int | None:
        """1 for the next run to start, None when the run is not waiting."""
        return self._place(run_id) + 1 if run_id in self._order else None

    async def wait(self, run_id: str) -> None:
        """Until a run of this daemon has ended and been recorded."""
        ended = self._ended.get(run_id)
        if ended is not None:
            await ended.wait()

    @property
    def queued(self) -> int:
        return len(self.waiting)

    # -- starting runs -------------------------------------------------------------------------

    async def submit(
        self, toolchain: Toolchain, params: dict[str, Any], options: RunOptions
    ) -> RunHandle:
        """Prepare and record a run, then start it or queue it; QueueFull when there is no room."""
        if self.draining:
            raise ShuttingDown("the daemon is shutting down and takes no new runs")
        busy = len(self.running) + len(self.waiting) + self._reserved
        if busy >= self.max_parallel + self.queue_size:
            raise QueueFull(
                f"{len(self.running)} runs are going and {len(self.waiting)} waiting; "
                "the queue is full"
            )
        self._reserved += 1
        try:
            handle = await self._prepare(toolchain, params, options)
        finally:
            self._reserved -= 1
        self.live[handle.id] = handle
        self._ended[handle.id] = asyncio.Event()
        handle.channel.on_event(lambda event: self._watch(handle, event))
        self._announce(handle, "queued")
        if len(self.running) < self.max_parallel:
            self._start(handle)
        else:
            self._order[handle.id] = (-handle.record.priority, next(self._arrivals))
            self.waiting.insert(self._place(handle.id), handle)
        return handle

    async def _prepare(
        self, toolchain: Toolchain, params: dict[str, Any], options: RunOptions
    ) -> RunHandle:
        prepare = self.engine.prepare
        if self.engine.resolver.answers_locally:
            # Folder registries answer as quickly as the run's own files are written: the
            # usual run is prepared right here, and only an install goes to a worker thread.
            # (Each hop to a thread and back cost about 3 ms of the daemon's CPU per run.)
            try:
                return prepare(toolchain, params, options, may_install=False)
            except WouldInstall:
                pass
        return await asyncio.to_thread(prepare, toolchain, params, options)

    def _start(self, handle: RunHandle) -> None:
        self.running.add(handle.id)
        self._announce(handle, "running")
        task = asyncio.ensure_future(self.engine.execute(handle))
        self._tasks.add(task)
        task.add_done_callback(lambda done: self._finished(handle, done))

    def _finished(self, handle: RunHandle, task: asyncio.Task[RunRecord]) -> None:
        self._tasks.discard(task)
        self.running.discard(handle.id)
        self.live.pop(handle.id, None)
        ended = self._ended.pop(handle.id, None)
        if ended is not None:
            ended.set()
        while self.waiting and len(self.running) < self.max_parallel:
            self._start(self._unqueue(self.waiting[0]))

    def _unqueue(self, handle: RunHandle) -> RunHandle:
        del self.waiting[self._place(handle.id)]
        del self._order[handle.id]
        return handle

    def _place(self, run_id: str) -> int:
        return bisect.bisect_left(
            self.waiting, self._order[run_id], key=lambda waiting: self._order[waiting.id]
        )

    def _watch(self, handle: RunHandle, event: Event) -> None:
        if event.kind == RUN_PAUSED and handle.id not in self.paused:
            self.paused.add(handle.id)
            self._announce(handle, "paused")
        elif event.kind == RUN_RESUMED:
            self.paused.discard(handle.id)
            self._announce(handle, "running")
        if event.kind == RUN_FINISHED:
            self.paused.discard(handle.id)
            status = str(event.data.get("status", "failed"))
            duration = event.data.get("duration")
            self._announce(handle, status, duration if isinstance(duration, float) else None)

    def _announce(self, handle: RunHandle, status: str, duration: float | None = None) -> None:
        record = handle.record
        change = Transition(
            record.id, record.toolchain, status, record.requester, duration=duration
        )
        for listener in self._listeners:
            listener(change)

    # -- stopping runs -------------------------------------------------------------------------

    def control(self, run_id: str, wanted: int) -> bool:
        """Pause, freeze or resume a run of this daemon at once; False when it is not one."""
        handle = self.live.get(run_id)
        if handle is None:
            return False
        handle.control(wanted)
        return True

    def cancel(self, run_id: str) -> bool:
        """Cancel a run of this daemon; False when it is not one (the store is asked instead)."""
        handle = self.live.get(run_id)
        if handle is None:
            return False
        handle.cancel()
        if handle.id in self._order:
            # A queued run starts at once to record its cancellation without running a step.
            self._start(self._unqueue(handle))
        return True

    async def drain(self, grace: float) -> list[str]:
        """Take no new runs, let the running ones finish within ``grace`` seconds, then cancel
        what is left (queued runs first) and wait for every run to be recorded."""
        self.draining = True
        for handle in list(self.waiting):
            self.cancel(handle.id)
        tasks = set(self._tasks)
        if tasks:
            await asyncio.wait(tasks, timeout=grace)
        cancelled = [run_id for run_id in self.running]
        for run_id in cancelled:
            self.live[run_id].cancel(reason="cancelled")
        if self._tasks:
            await asyncio.wait(set(self._tasks))
        return cancelled
