"""Executing a run in an event loop: the toolchain's graph, parallel steps, watchers."""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING, Any

from ..executors.protocol import Launch, StartError
from ..toolchains.plan import ready
from . import events as ev
from .steps import Outcome, RetryDelay, RunBook

if TYPE_CHECKING:
    from ..history.store import RunRecord
    from .engine import Engine, PlannedStep, RunHandle


class AsyncExecution(RunBook):
    """One run executing in the running event loop."""

    def __init__(self, engine: Engine, handle: RunHandle) -> None:
        super().__init__(engine, handle)
        self.cancelled = asyncio.Event()
        # Everything that cancels a run does so on the loop's thread (signal handlers, the TUI,
        # the daemon), so the loop's event can be set directly.
        handle.on_cancel.append(self.cancelled.set)
        if handle.cancel_event.is_set():
            self.cancelled.set()

    async def run(self) -> RunRecord:
        timeout = self.begin()
        watchers = [
            asyncio.ensure_future(self._watch_cancel_requests()),
            asyncio.ensure_future(self._flush_periodically()),
        ]
        if timeout:
            watchers.append(asyncio.ensure_future(self._watch_timeout(timeout)))
        try:
            await self._schedule()
        finally:
            self.handle.on_cancel.remove(self.cancelled.set)
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

    async def _watch_timeout(self, timeout: float) -> None:
        await asyncio.sleep(timeout)
        self.time_out(timeout)

    async def _watch_cancel_requests(self) -> None:
        while True:
            await asyncio.sleep(self.settings.cancel_poll)
            if await asyncio.to_thread(self.store.cancel_requested, self.run_id):
                self.cancel_requested()
                return

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
                self._start_ready(running)
                if not running:
                    return
                waiting: list[asyncio.Future[Any]] = [*running.values(), cancelled]
                await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
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
                answer = await self._attempt(plan, order.number)

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
        ended = asyncio.ensure_future(attempt.ended())
        cancelled = asyncio.ensure_future(self.cancelled.wait())
        done, _ = await asyncio.wait(
            [ended, cancelled], timeout=launch.timeout, return_when=asyncio.FIRST_COMPLETED
        )
        cancelled.cancel()
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
