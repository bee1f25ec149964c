"""Executing a run in an event loop: the toolchain's graph, parallel steps, watchers."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import TYPE_CHECKING, Any

from ..executors.protocol import Launch, StartError
from ..toolchains.plan import ready
from . import events as ev
from .pausing import FROZEN
from .steps import Outcome, RetryDelay, RunBook

PAUSED_LOOK = 0.1  # seconds between looks at a paused run's clocks

if TYPE_CHECKING:
    from ..history.store import RunRecord
    from .engine import Engine, PlannedStep, RunHandle


class AsyncExecution(RunBook):
    """One run executing in the running event loop."""

    def __init__(self, engine: Engine, handle: RunHandle) -> None:
        super().__init__(engine, handle)
        self.cancelled = asyncio.Event()
        self.changed = asyncio.Event()  # paused, frozen or resumed: the scheduler looks again
        self.asked = asyncio.Event()  # this process asked to pause or resume (handle.control)
        # Everything that cancels a run does so on the loop's thread (signal handlers, the TUI,
        # the daemon), so the loop's event can be set directly.
        handle.on_cancel.append(self.cancelled.set)
        handle.on_control.append(self.asked.set)
        if handle.cancel_event.is_set():
            self.cancelled.set()

    async def run(self) -> RunRecord:
        timeout = self.begin()
        watchers = [
            asyncio.ensure_future(self._watch_controls()),
            asyncio.ensure_future(self._flush_periodically()),
        ]
        if timeout:
            watchers.append(asyncio.ensure_future(self._watch_timeout(timeout)))
        try:
            await self._schedule()
        finally:
            self.handle.on_cancel.remove(self.cancelled.set)
            self.handle.on_control.remove(self.asked.set)
            for watcher in watchers:
                watcher.cancel()
            await asyncio.gather(*watchers, return_exceptions=True)
        collect = getattr(self.executor, "collect", None)
        if collect is not None:
            # An executor elsewhere brings the run's workspace back for its artifacts.
            warning = await collect(self.run_id, self.workspace)
            if warning:
                self.channel.emit(ev.MESSAGE, level="warning", text=warning)
        return self.finish()

    async def _flush_periodically(self) -> None:
        # Output is written in batches; a tool that prints a line and then goes quiet must
        # still have that line on disk for readers in other processes.
        while True:
            await asyncio.sleep(ev.FLUSH_SECONDS)
            self.channel.log.flush()
            self.check_storage()
            self.write_books()

    async def _watch_timeout(self, timeout: float) -> None:
        """The run's timeout, on a clock that stops while the run is paused."""
        start = time.monotonic()
        while True:
            now = time.monotonic()
            left = self.clock.left(timeout, start, now)
            if left <= 0 and not self.paused:
                self.time_out(timeout)
                return
            await asyncio.sleep(left if left > 0 and not self.paused else PAUSED_LOOK)

    async def _watch_controls(self) -> None:
        """Cancel, pause and resume, asked here (``asked``) or by another process (the store,
        every ``cancel_poll``)."""
        poll = self.settings.cancel_poll
        next_poll = time.monotonic() + poll
        while not self.handle.cancel_event.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.asked.wait(), max(0.0, next_poll - time.monotonic()))
            self.asked.clear()
            level = self.clock.level
            if time.monotonic() >= next_poll:
                next_poll = time.monotonic() + poll
                cancel, control = await asyncio.to_thread(self.store.controls, self.run_id)
                self.controls_read(cancel, control)
            else:
                self.follow_controls()
            if self.clock.level != level or self.handle.cancel_event.is_set():
                self.changed.set()

    async def _schedule(self) -> None:
        running: dict[str, asyncio.Future[str]] = {}
        cancelled = asyncio.ensure_future(self.cancelled.wait())
        try:
            while True:
                if self.cancelled.is_set():
                    for step_id, state in self.states.items():
                        if state == "pending":
                            self.skip(step_id, "run cancelled", status="cancelled")
                    if running:
                        await asyncio.wait(running.values())
                        self._collect(running)
                    return
                if not self.paused:
                    self._start_ready(running)
                if not running and not (self.paused and "pending" in self.states.values()):
                    return
                changed = asyncio.ensure_future(self.changed.wait())
                waiting: list[asyncio.Future[Any]] = [*running.values(), cancelled, changed]
                await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
                changed.cancel()
                self.changed.clear()
                self._collect(running)
        finally:
            cancelled.cancel()

    def _collect(self, running: dict[str, asyncio.Future[str]]) -> None:
        for step_id, task in list(running.items()):
            if task.done():
                del running[step_id]
                self.states[step_id] = task.result()

    def _start_ready(self, running: dict[str, asyncio.Future[str]]) -> None:
        changed = True
        while changed:
            changed = False
            for step_id in ready(self.order, self.needs, self.states):
                if len(running) >= self.handle.toolchain.max_parallel:
                    return
                step = self.plans[step_id].step
                should_run, reason = self.decide(step)
                if not should_run:
                    self.skip(step_id, reason)
                    changed = True
                    continue
                self.states[step_id] = "running"
                running[step_id] = asyncio.ensure_future(self._run_step(self.plans[step_id]))

    async def _run_step(self, plan: PlannedStep) -> str:
        program = self.step_program(plan)
        answer: Any = None
        while True:
            try:
                order = program.send(answer)
            except StopIteration as end:
                return str(end.value)
            if isinstance(order, RetryDelay):
                answer = await self._cancelled_within(order.seconds)
            else:
                await self._while_paused()  # a retry waits for the run to go on
                answer = await self._attempt(plan, order.number)

    async def _while_paused(self) -> None:
        while self.paused and not self.cancelled.is_set():
            await asyncio.sleep(PAUSED_LOOK)

    async def _cancelled_within(self, seconds: float) -> bool:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.cancelled.wait(), timeout=seconds)
        return self.cancelled.is_set()

    async def _attempt(self, plan: PlannedStep, number: int) -> Outcome:
        step = plan.step
        launch = self.launch(plan, number)
        if not isinstance(launch, Launch):
            return launch
        try:
            attempt = await self.executor.start(launch, self.sink(step, number))
        except StartError as exc:
            return self.start_failed(step, number, launch.argv, f"cannot start {exc}", emitted=True)
        self.attempt_started(step, attempt.placement)
        self.live[step.id] = attempt
        ended = asyncio.ensure_future(attempt.ended())
        cancelled = asyncio.ensure_future(self.cancelled.wait())
        try:
            done = await self._ended_within(launch, ended, cancelled)
        finally:
            cancelled.cancel()
            self.live.pop(step.id, None)
        stopped = None
        try:
            if ended not in done:
                stopped = self.stopped(step, by_cancel=cancelled in done)
                grace = 0.0 if self.handle.force else self.settings.kill_grace
                await attempt.cancel(grace=grace, forced=lambda: self.handle.force)
            ending = await ended
        except BaseException:
            # The books failed (the store cannot be written): no tool outlives its run.
            await asyncio.shield(attempt.cancel(grace=0.0))
            raise
        return self.attempt_finished(step, number, launch, ending, stopped)

    async def _ended_within(
        self, launch: Launch, ended: asyncio.Future[Any], cancelled: asyncio.Future[Any]
    ) -> set[asyncio.Future[Any]]:
        """What finished first: the attempt, a cancel, or (neither: the empty set) the step's
        timeout, on a clock that stops while the step is frozen."""
        while True:
            left = None
            if launch.timeout is not None:
                now = time.monotonic()
                left = self.clock.left(launch.timeout, launch.started, now, frozen=True)
                if left <= 0 and self.clock.level != FROZEN:
                    return set()
                left = max(left, PAUSED_LOOK)
            done, _ = await asyncio.wait(
                [ended, cancelled], timeout=left, return_when=asyncio.FIRST_COMPLETED
            )
            if done:
                return done
