"""Executing a run of one step on the calling thread, without an event loop.

``toolrun exec`` runs here: its budget is 100 ms over the tool itself, and importing asyncio
alone would take a third of it. The books, and so the history, are those of ``async_driver``;
what differs is only the waiting: the executor's blocking form delivers the output when
pumped, and this thread does, every ``FLUSH_SECONDS`` at most, what the event loop's
watchers do there.
"""

from __future__ import annotations

import time

from ..executors.protocol import Launch, StartError
from . import events as ev
from .pausing import FROZEN
from .steps import Outcome, RetryDelay, RunBook

# `typing` costs milliseconds at start-up; annotations alone never need it at run time.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from ..executors.protocol import BlockingExecutor
    from ..history.store import RunRecord
    from .engine import Engine, PlannedStep, RunHandle


class ThreadedExecution(RunBook):
    """One run of one step, executing on this thread."""

    def __init__(self, engine: Engine, handle: RunHandle) -> None:
        super().__init__(engine, handle)
        if len(handle.steps) != 1:
            raise ValueError("a threaded execution runs exactly one step")
        if engine.blocking is None:
            raise ValueError("this engine's executor cannot run a step without an event loop")
        self.blocking: BlockingExecutor = engine.blocking
        self._timeout: float | None = None
        self._started = 0.0
        self._next_poll = 0.0

    def run(self) -> RunRecord:
        (plan,) = self.handle.steps
        self._timeout = self.begin()
        now = self._started = time.monotonic()
        self._next_poll = now + self.settings.cancel_poll
        if self.handle.cancel_event.is_set():
            self.skip(plan.id, "run cancelled", status="cancelled")
        else:
            self.states[plan.id] = "running"
            self.states[plan.id] = self._run_step(plan)
        return self.finish()

    def _watch(self) -> None:
        """What the event loop's watchers do: flush, time the run out (its clock stopped while
        paused), look for a cancel, a pause or a resume."""
        self.channel.log.flush()
        self.check_storage()
        self.write_books()
        now = time.monotonic()
        timeout = self._timeout
        if timeout and not self.paused and self.clock.left(timeout, self._started, now) <= 0:
            self._timeout = None
            self.time_out(timeout)
        if now >= self._next_poll and not self.handle.cancel_event.is_set():
            self._next_poll = now + self.settings.cancel_poll
            self.controls_read(*self.store.controls(self.run_id))
        else:
            self.follow_controls()

    def _run_step(self, plan: PlannedStep) -> str:
        program = self.step_program(plan)
        answer: Any = None
        while True:
            try:
                order = program.send(answer)
            except StopIteration as end:
                return str(end.value)
            if isinstance(order, RetryDelay):
                answer = self._cancelled_within(order.seconds)
            else:
                while self.paused and not self.handle.cancel_event.is_set():
                    self.handle.cancel_event.wait(ev.FLUSH_SECONDS)  # a retry waits too
                    self._watch()
                answer = self._attempt(plan, order.number)

    def _cancelled_within(self, seconds: float) -> bool:
        cancel = self.handle.cancel_event
        end = time.monotonic() + seconds
        while not cancel.is_set() and (left := end - time.monotonic()) > 0:
            cancel.wait(min(left, ev.FLUSH_SECONDS))
            self._watch()
        return cancel.is_set()

    def _attempt(self, plan: PlannedStep, number: int) -> Outcome:
        step = plan.step
        launch = self.launch(plan, number)
        if not isinstance(launch, Launch):
            return launch
        try:
            attempt = self.blocking.start_blocking(launch, self.sink(step, number))
        except StartError as exc:
            return self.start_failed(step, number, launch.argv, f"cannot start {exc}", emitted=True)
        self.attempt_started(step, attempt.placement)
        self.live[step.id] = attempt
        stopped = None
        try:
            while not attempt.pump(ev.FLUSH_SECONDS):
                self._watch()
                if stopped is not None or attempt.exited():
                    continue
                if self.handle.cancel_event.is_set():
                    stopped = self.stopped(step, by_cancel=True)
                elif self._timed_out(launch):
                    stopped = self.stopped(step, by_cancel=False)
                if stopped is not None:
                    grace = 0.0 if self.handle.force else self.settings.kill_grace
                    attempt.cancel(grace=grace, forced=lambda: self.handle.force)
            self._watch()
        except BaseException:
            # The books failed (the store cannot be written): no tool outlives its run.
            attempt.cancel(grace=0.0)
            raise
        finally:
            self.live.pop(step.id, None)
        return self.attempt_finished(step, number, launch, attempt.ending(), stopped)

    def _timed_out(self, launch: Launch) -> bool:
        """The step's timeout passed, on a clock that stops while it is frozen."""
        if launch.timeout is None or self.clock.level == FROZEN:
            return False
        return self.clock.left(launch.timeout, launch.started, time.monotonic(), frozen=True) <= 0
