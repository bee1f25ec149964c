"""Executing a run of one step on the calling thread, without an event loop.

``toolrun exec`` runs here: its budget is 100 ms over the tool itself, and importing asyncio
alone would take a third of it. The books, and so the history, are those of ``async_run``;
what differs is only the waiting: threads read the pipes (``ThreadedStepProcess``) and this
thread does, every ``FLUSH_SECONDS`` at most, what the event loop's watchers do there.
"""

from __future__ import annotations

import time

from ..executors.local import StartError, ThreadedStepProcess
from . import events as ev
from .steps import Launch, Outcome, RunBook

# `typing` costs milliseconds at start-up; annotations alone never need it at run time.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from ..history.store import RunRecord
    from .engine import Engine, PlannedStep, RunHandle


class ThreadedExecution(RunBook):
    """One run of one step, executing on this thread."""

    def __init__(self, engine: Engine, handle: RunHandle) -> None:
        super().__init__(engine, handle)
        if len(handle.steps) != 1:
            raise ValueError("a threaded execution runs exactly one step")
        self._timeout: float | None = None
        self._deadline: float | None = None
        self._next_poll = 0.0

    def run(self) -> RunRecord:
        (plan,) = self.handle.steps
        self._timeout = self.begin()
        now = time.monotonic()
        self._deadline = now + self._timeout if self._timeout else None
        self._next_poll = now + self.settings.cancel_poll
        if self.handle.cancel_event.is_set():
            self.skip(plan.id, "run cancelled", status="cancelled")
        else:
            self.states[plan.id] = "running"
            self.states[plan.id] = self._run_step(plan)
        return self.finish()

    def _watch(self) -> None:
        """What the event loop's watchers do: flush, time the run out, look for a cancel."""
        self.channel.log.flush()
        self.check_storage()
        now = time.monotonic()
        if self._deadline is not None and now >= self._deadline:
            self._deadline = None
            assert self._timeout is not None
            self.time_out(self._timeout)
        if now >= self._next_poll and not self.handle.cancel_event.is_set():
            self._next_poll = now + self.settings.cancel_poll
            if self.store.cancel_requested(self.run_id):
                self.cancel_requested()

    def _run_step(self, plan: PlannedStep) -> str:
        step = plan.step
        attempts = self.step_begins(plan)
        outcome: Outcome = ("failed", None, None, {})
        made = 0
        for attempt in range(1, attempts + 1):
            if attempt > 1 and self._cancelled_within(self.retry_delay(step, attempt)):
                outcome = ("cancelled", None, None, {})
                break
            outcome = self._attempt(plan, attempt)
            made = attempt
            if not self.attempt_ended(step, attempt, outcome[0], outcome[2]):
                break
        return self.step_ends(step, outcome, made)

    def _cancelled_within(self, seconds: float) -> bool:
        cancel = self.handle.cancel_event
        end = time.monotonic() + seconds
        while not cancel.is_set() and (left := end - time.monotonic()) > 0:
            cancel.wait(min(left, ev.FLUSH_SECONDS))
            self._watch()
        return cancel.is_set()

    def _attempt(self, plan: PlannedStep, attempt: int) -> Outcome:
        step = plan.step
        launch = self.launch(plan, attempt)
        if not isinstance(launch, Launch):
            return launch
        process = ThreadedStepProcess(
            launch.argv,
            cwd=launch.cwd,
            env=launch.env,
            encoding=launch.encoding,
            on_lines=lambda stream, lines: self.output(step.id, attempt, stream, lines),
            on_raw=self.handle.on_raw,
            label=self.attempt_label(step, attempt),
            orphan_grace=self.settings.orphan_grace,
            kill_grace=self.settings.kill_grace,
        )
        try:
            process.start()
        except StartError as exc:
            return self.start_failed(
                step, attempt, launch.argv, f"cannot start {exc}", emitted=True
            )
        self.process_started(step, process.pid, process.box.ref if process.box else None)
        step_deadline = launch.started + step.timeout if step.timeout else None
        stopped = None
        try:
            while not process.done:
                process.pump(ev.FLUSH_SECONDS)
                self._watch()
                if stopped is not None or process.returncode is not None:
                    continue
                if self.handle.cancel_event.is_set():
                    stopped = self.stopped(step, by_cancel=True)
                elif step_deadline is not None and time.monotonic() >= step_deadline:
                    stopped = self.stopped(step, by_cancel=False)
                if stopped is not None:
                    grace = 0.0 if self.handle.force else self.settings.kill_grace
                    process.terminate(grace=grace, forced=lambda: self.handle.force)
        except BaseException:
            # The books failed (the store cannot be written): no tool outlives its run.
            process.terminate(grace=0.0)
            raise
        return self.attempt_finished(step, attempt, launch, process.finish(), stopped)
