"""A run's books while it executes: the step state machine, results, events, store updates.

Both drivers keep their books here, so a run looks the same in the history whichever ran it:
``async_driver`` (an event loop: the toolchain's graph, parallel steps) and
``threaded_driver`` (one step on the calling thread). A step's attempts and retries are one
program (``step_program``) that both drive; the attempts themselves are the executor's
(executors/protocol.py). Nothing here blocks for long.

It stays whole: ``RunBook`` is one state machine, each transition changing a step's state
and what records it (its row, its events) at once; split, a state and its records would
live apart.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from ..errors import StorageError, UsageError
from ..executors.protocol import (
    Ending,
    FreezeRefused,
    Launch,
    Placement,
    Sandbox,
    Sink,
    StepRef,
    exit_description,
)
from ..history.store import RunRecord
from ..policy import check_relative_arg, inherited_env, step_env
from ..records import record
from ..toolchains.expressions import STATUS_FUNCTIONS, Context, calls, truthy
from ..toolchains.model import Step
from ..toolchains.plan import needs_outcome
from ..tools.manifest import current_platform
from . import events as ev
from .pausing import FROZEN, GOING, PAUSED, PauseClock

# `typing` costs milliseconds at start-up; annotations alone never need it at run time.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Generator
    from typing import Any

    from .engine import Engine, PlannedStep, RunHandle

EXIT_CODES = {"succeeded": 0, "failed": 1, "timed_out": 124, "cancelled": 130, "interrupted": 1}
OUTCOMES = {
    "succeeded": "success",
    "failed": "failure",
    "timed_out": "failure",
    "worker_lost": "failure",
    "skipped": "skipped",
    "cancelled": "cancelled",
}

FAILED = ("failed", "timed_out", "worker_lost")  # a step's ends that fail its run

# status, exit code, error, outputs
Outcome = tuple[str, int | None, str | None, dict[str, str]]


@record(frozen=True)
class RetryDelay:
    """A step's program, to its driver: wait this long before the next attempt, and say
    whether the run was cancelled meanwhile."""

    seconds: float


@record(frozen=True)
class MakeAttempt:
    """A step's program, to its driver: make this attempt and give back its ``Outcome``."""

    number: int


class RunBook:
    """The state of one run while it executes."""

    def __init__(self, engine: Engine, handle: RunHandle) -> None:
        self.engine = engine
        self.executor = engine.executor
        self.store = engine.store
        self.settings = engine.settings
        self.handle = handle
        self.channel = handle.channel
        self.run_id = handle.id
        self.run_dir = self.store.run_dir(self.run_id)
        self.workspace = self.run_dir / "work"
        self.order = [p.id for p in handle.steps]
        self.needs = {p.id: p.step.needs for p in handle.steps}
        self.plans = {p.id: p for p in handle.steps}
        self.states: dict[str, str] = {p.id: "pending" for p in handle.steps}
        self.results: dict[str, dict[str, Any]] = {}
        self.allowed_failures: set[str] = set()
        self.output_bytes = 0
        self.truncated = False
        self.marked: set[tuple[str, int]] = set()  # steps told that the output cap hides theirs
        self.prefix_lines = len(handle.steps) > 1
        self.workers: dict[str, list[str | None]] = {}  # step id -> the worker of each attempt
        self.started_at = time.time()
        self.clock = PauseClock()
        self.control_seen = 0  # the last request from another process (Store.request_control)
        self.live: dict[str, Any] = {}  # step id -> its running attempt (the drivers')
        # Changes to the run's row (None) and its steps' rows not yet written: see ``later``.
        self.unwritten: dict[str | None, dict[str, Any]] = {}
        self.text_log = None
        if self.settings.log_format in ("text", "both"):
            self.text_log = (self.run_dir / "output.log").open("a", encoding="utf-8")
        for step_id, kept in handle.options.carried.items():
            self.states[step_id] = "succeeded"
            self.results[step_id] = {
                "outputs": kept.outputs,
                "outcome": "success",
                "exit_code": kept.exit_code,
            }

    def context(self, step: Step | None = None) -> Context:
        toolchain = self.handle.toolchain
        values: dict[str, Any] = {
            "params": self.handle.params,
            "platform": current_platform(),
            "toolchain": {
                "name": toolchain.name,
                "dir": str(toolchain.path.parent.resolve()) if toolchain.path else "",
            },
            "run": {"id": self.run_id, "workspace": str(self.workspace)},
            "steps": self.results,
        }
        values["env"] = {k: t.render(Context(values)) for k, t in toolchain.env.items()}

        def status() -> str:
            if step is None:
                return "success"
            return needs_outcome(step.id, self.needs, self.states, self.allowed_failures)

        return Context(values, status)

    # -- the run ------------------------------------------------------------------------------

    def begin(self) -> float | None:
        """Record the start; returns the run's timeout in seconds, if it has one."""
        self.started_at = time.time()
        self.later(None, status="running", started_at=self.started_at)
        record = self.handle.record
        # All the history keeps of a run, so that its log alone can rebuild its index entry
        # (toolrun history repair).
        self.channel.emit(
            ev.RUN_STARTED,
            run=self.run_id,
            toolchain=self.handle.toolchain.name,
            params=self.handle.params,
            steps=self.order,
            origin=record.origin,
            requester=record.requester,
            created_at=record.created_at,
            toolchain_sha256=record.toolchain_sha256,
            rerun_of=record.rerun_of,
            plan=self._plan(),
            priority=record.priority,
            lock_sha256=record.lock_sha256,
        )
        for warning in self.handle.toolchain.warnings:
            self.channel.emit(ev.MESSAGE, level="warning", text=warning)
        cancel, control = self.store.controls(self.run_id)  # asked while it was queued?
        if cancel or control or self.handle.wanted:
            self.controls_read(cancel, control)
        return (
            self.handle.options.timeout
            or self.handle.toolchain.timeout
            or self.settings.default_timeout
        )

    def _plan(self) -> list[dict[str, Any]]:
        from .engine import tool_digest

        plan = []
        for planned in self.handle.steps:
            step, tool = planned.step, planned.tool
            kept = self.handle.options.carried.get(step.id)
            plan.append(
                {
                    "id": step.id,
                    "tool": step.cmd,
                    "spec": step.spec_text,
                    "version": tool.version if tool else kept.version if kept else None,
                    "sha256": tool_digest(tool) if tool else kept.sha256 if kept else None,
                }
            )
        return plan

    def time_out(self, timeout: float) -> None:
        self.channel.emit(ev.MESSAGE, level="error", text=f"run timed out after {timeout:g}s")
        self.handle.cancel(reason="timed_out")

    def cancel_requested(self) -> None:
        """`toolrun cancel ID` from another process marked the run in the store."""
        self.channel.emit(ev.MESSAGE, level="warning", text="cancel requested")
        self.handle.cancel()

    # -- the books' rows ----------------------------------------------------------------------

    def later(self, step_id: str | None, **fields: Any) -> None:
        """A change to the run's row (``step_id`` None) or a step's, written with the next
        that must be written at once (``now``: an attempt starting, its process's id, the
        run's end, a pause) or by the driver's flush, every ``FLUSH_SECONDS``. A one-step run
        took six write transactions; it takes four (issue 16)."""
        self.unwritten.setdefault(step_id, {}).update(fields)

    def now(self, step_id: str | None, **fields: Any) -> None:
        self.later(step_id, **fields)
        self.write_books()

    def write_books(self) -> None:
        """Every change not yet written, in one transaction."""
        if self.unwritten:
            changes, self.unwritten = self.unwritten, {}
            self.store.update_rows(self.run_id, changes)

    # -- pause and resume ---------------------------------------------------------------------

    def controls_read(self, cancel: bool, control: int) -> None:
        """What other processes asked (``Store.controls``), acted on."""
        if cancel and not self.handle.cancel_event.is_set():
            self.cancel_requested()
        if control != self.control_seen:
            self.control_seen = control
            self.handle.wanted = control % 4
        self.follow_controls()

    @property
    def paused(self) -> bool:
        return self.clock.level != GOING

    def follow_controls(self) -> None:
        """Pause, freeze, thaw or resume as the run is asked to; cancel a run paused past
        ``pause_limit``. On the driver's thread (or loop)."""
        now = time.monotonic()
        if self.handle.cancel_event.is_set():
            if self.clock.level == FROZEN:
                self._freeze(False)  # a frozen process cannot even be asked to stop
            self.clock.change(GOING, now)
            return
        since = self.clock.since
        if since is not None and now - since > self.settings.pause_limit:
            limit = self.settings.pause_limit
            self.channel.emit(
                ev.MESSAGE, level="error", text=f"paused for longer than {limit:g}s: cancelled"
            )
            self.handle.cancel()
            self.follow_controls()
            return
        wanted, level = self.handle.wanted, self.clock.level
        if wanted == level:
            return
        if wanted == GOING:
            if level == FROZEN:
                self._freeze(False)
            paused = now - (since or now)
            self.clock.change(GOING, now)
            self.now(None, status="running")
            self.channel.emit(ev.RUN_RESUMED, paused=round(paused, 3))
            return
        if wanted == FROZEN and not self._freeze(True):
            wanted = PAUSED  # said why; the run is paused all the same
            self.handle.wanted = PAUSED
        elif wanted == PAUSED and level == FROZEN:
            self._freeze(False)
        if wanted == level:
            return
        if level == GOING:
            self.now(None, status="paused")
        self.clock.change(wanted, now)
        self.channel.emit(ev.RUN_PAUSED, now=wanted == FROZEN)

    def _freeze(self, frozen: bool) -> bool:
        """Freeze (or thaw) every running attempt; all or none: False, and none frozen, when
        one of them cannot be."""
        done: list[Any] = []
        for step_id, attempt in self.live.items():
            freeze = getattr(attempt, "freeze", None)
            try:
                if freeze is None:
                    raise FreezeRefused("it runs where toolrun cannot freeze it (a worker)")
                freeze(frozen)
            except FreezeRefused as exc:
                for undo in done:
                    undo(False)
                self.channel.emit(
                    ev.MESSAGE,
                    step_id,
                    level="warning",
                    text=f"cannot freeze step {step_id}: {exc}; paused without --now",
                )
                return False
            done.append(freeze)
        return True

    def decide(self, step: Step) -> tuple[bool, str]:
        context = self.context(step)
        outcome = context.needs_status()
        if step.condition is None:
            return outcome == "success", f"a step it needs ended: {outcome}"
        nodes = step.condition.nodes()
        explicit = any(calls(node) & set(STATUS_FUNCTIONS) for node in nodes)
        if not explicit and outcome != "success":
            return False, f"a step it needs ended: {outcome}"
        try:
            value = step.condition.evaluate_single(context)
        except Exception as exc:  # a condition that cannot be evaluated is false, and said so
            return False, f"its condition failed: {exc}"
        return truthy(value), "its condition is false"

    def skip(self, step_id: str, reason: str, *, status: str = "skipped") -> None:
        self.states[step_id] = status
        self.results[step_id] = {"outputs": {}, "outcome": OUTCOMES[status], "exit_code": None}
        self.later(step_id, status=status, error=reason)
        self.channel.emit(ev.STEP_SKIPPED, step_id, status=status, reason=reason)

    def finish(self) -> RunRecord:
        statuses = self.states.values()
        if self.handle.cancel_event.is_set():
            status = self.handle.cancel_reason
        elif any(
            s in FAILED and step_id not in self.allowed_failures
            for step_id, s in self.states.items()
        ):
            status = "failed"
        else:
            status = "succeeded"
        for step_id, state in self.states.items():
            if state in ("pending", "running"):
                self.later(step_id, status="cancelled")
        now = time.time()
        duration = now - self.started_at
        self.channel.emit(
            ev.RUN_FINISHED,
            status=status,
            exit_code=EXIT_CODES[status],
            duration=round(duration, 3),
            steps={step_id: state for step_id, state in zip(self.order, statuses, strict=True)},
        )
        self.channel.log.close()
        if self.text_log is not None:
            self.text_log.close()
        error = self.handle.storage_error
        self.now(
            None,
            status=status,
            finished_at=now,
            exit_code=EXIT_CODES[status],
            size_bytes=self.store.folder_size(self.run_id),
            **({"error": error.message} if error is not None else {}),
        )
        self.handle.owner.release()
        run_finished = getattr(self.executor, "run_finished", None)
        if run_finished is not None:
            run_finished(self.run_id)  # an executor elsewhere forgets the run's placement
        final = self.store.require_run(self.run_id)
        for listener in self.engine.on_finished:
            listener(final, self.handle.toolchain)
        return final

    # -- a step and its attempts --------------------------------------------------------------

    def step_begins(self, plan: PlannedStep) -> int:
        """Record the start of a step; returns how many attempts it may take."""
        self.later(plan.id, status="running", started_at=time.time())
        return plan.step.retries.max + 1

    def retry_delay(self, step: Step, attempt: int) -> float:
        """Seconds to wait before ``attempt``, announced."""
        delay = step.retries.delay_before(attempt)
        attempts = step.retries.max + 1
        self.channel.emit(
            ev.MESSAGE,
            step.id,
            attempt,
            level="warning",
            text=f"retrying in {delay:g}s (attempt {attempt} of {attempts})",
        )
        return delay

    def attempt_ended(self, step: Step, attempt: int, status: str, error: str | None) -> bool:
        """True when another attempt should follow (recorded then; the last one by
        ``step_ends``)."""
        if status in ("succeeded", "cancelled") or self.handle.cancel_event.is_set():
            return False
        if attempt > step.retries.max or (error and error.startswith("cannot start")):
            return False  # no tries left, or starting again would fail the same way
        self.later(step.id, attempts=attempt)
        return True

    def step_program(self, plan: PlannedStep) -> Generator[RetryDelay | MakeAttempt, Any, str]:
        """The one retry loop: a step's attempts, the delays between them, its end. A driver
        does what it yields (waiting its own way) and sends back the answer; the step's final
        status is the generator's value."""
        step = plan.step
        attempts = self.step_begins(plan)
        outcome: Outcome = ("failed", None, None, {})
        made = 0
        for attempt in range(1, attempts + 1):
            if attempt > 1 and (yield RetryDelay(self.retry_delay(step, attempt))):
                outcome = ("cancelled", None, None, {})
                break
            outcome = yield MakeAttempt(attempt)
            made = attempt
            if not self.attempt_ended(step, attempt, outcome[0], outcome[2]):
                break
        return self.step_ends(step, outcome, made)

    def step_ends(self, step: Step, outcome: Outcome, attempts: int) -> str:
        status, exit_code, error, outputs = outcome
        if status != "succeeded" and step.continue_on_error and status != "cancelled":
            self.allowed_failures.add(step.id)
        self.results[step.id] = {
            "outputs": outputs,
            "outcome": OUTCOMES[status],
            "exit_code": exit_code,
        }
        self.later(
            step.id,
            status=status,
            exit_code=exit_code,
            attempts=attempts,
            finished_at=time.time(),
            outputs=outputs,
            error=error,
            allowed_failure=int(step.id in self.allowed_failures),
        )
        return status

    def launch(self, plan: PlannedStep, attempt: int) -> Launch | Outcome:
        """Everything an attempt needs before its process starts, or why it cannot start."""
        step, tool = plan.step, plan.tool
        assert tool is not None
        context = self.context(step)
        # Not created here: the step creates it if it has something to say (a new file costs
        # more than the rest of a launch, see history/ownership.py).
        output_file = self.run_dir / f"outputs.{step.id}.{attempt}.env"
        argv = tool.manifest.command_for(
            current_platform(), tool_dir=tool.path, python=self.settings.python
        ) + [arg.render(context) for arg in step.args]
        env = self._env(plan, context, attempt, output_file)
        if tool.manifest.is_system:
            import shutil

            found = shutil.which(argv[0], path=env.get("PATH"))
            if found is None:
                return self.start_failed(step, attempt, argv, f"{argv[0]}: not found on PATH")
            argv[0] = found
        if self.handle.options.remote:
            for arg in argv[len(argv) - len(step.args) :]:
                try:
                    check_relative_arg(arg)
                except UsageError as exc:
                    return self.start_failed(step, attempt, argv, exc.message)
        # Whoever learns of the start from the event (a page, a follower) finds the rows
        # saying so: the run and the step running.
        self.write_books()
        self.channel.emit(
            ev.STEP_STARTED, step.id, attempt, tool=tool.name, version=tool.version, argv=argv
        )
        ref = None
        if getattr(self.executor, "wants_step", False):
            ref = self._step_ref(plan, attempt, context)
        wasm = tool.manifest.wasm
        sandbox = Sandbox(wasm.memory, wasm.folders(tool.path)) if wasm is not None else None
        return Launch(
            argv,
            env,
            self.workspace,
            tool.manifest.encoding,
            output_file,
            label=self.attempt_label(step, attempt),
            timeout=self.step_timeout(step),
            started=time.monotonic(),
            step=ref,
            sandbox=sandbox,
        )

    def _step_ref(self, plan: PlannedStep, attempt: int, context: Context) -> StepRef:
        from .engine import tool_digest, where_to_run

        step, tool = plan.step, plan.tool
        assert tool is not None
        env = step_env(
            context.values["env"],
            {k: t.render(context) for k, t in step.env.items()},
            self.handle.options.caller_env,
        )
        return StepRef(
            run_id=self.run_id,
            step_id=step.id,
            attempt=attempt,
            tool=tool.name,
            version=tool.version,
            sha256=tool_digest(tool),
            args=[arg.render(context) for arg in step.args],
            env=env,
            selector=where_to_run(step, self.handle.toolchain, self.handle.options),
            own_selector=bool(step.runs_on),
            priority=self.handle.record.priority,
            queued_at=self.handle.record.created_at,
        )

    def sink(self, step: Step, attempt: int) -> Sink:
        """Where an attempt's output goes: the books (events, the text log), and the raw
        bytes to whoever asked for them; what an executor elsewhere says of it, as messages."""
        return Sink(
            lambda stream, lines: self.output(step.id, attempt, stream, lines),
            self.handle.on_raw,
            on_note=lambda text: self.note(step, attempt, text),
            on_placed=lambda placement: self.placed(step, attempt, placement),
        )

    def note(self, step: Step, attempt: int, text: str) -> None:
        self.channel.emit(ev.MESSAGE, step.id, attempt, level="info", text=text)

    def placed(self, step: Step, attempt: int, placement: Placement) -> None:
        """An executor elsewhere says where the attempt landed: the worker is recorded for
        every attempt (``toolrun show``, ``history --worker``)."""
        if placement.host is None:
            return
        names = self.workers.setdefault(step.id, [])
        names.extend([None] * (attempt - len(names)))
        names[attempt - 1] = placement.host
        self.later(step.id, workers=names)

    def attempt_label(self, step: Step, attempt: int) -> str:
        """How the system names an attempt's container (a cgroup's folder)."""
        return f"{self.run_id}-{step.id}-{attempt}"

    def attempt_started(self, step: Step, placement: Placement) -> None:
        """Recorded so that, should this toolrun die, the next one can end the attempt (and
        everything in its container)."""
        if placement.pid is not None:
            self.now(
                step.id,
                pid=placement.pid,
                pid_started=placement.pid_started,
                cgroup=placement.container,
            )

    def step_timeout(self, step: Step) -> float | None:
        return step.timeout if step.timeout is not None else self.settings.default_step_timeout

    def stopped(self, step: Step, *, by_cancel: bool) -> tuple[str, str]:
        """Status and error of an attempt ended early: by a cancel or by the step's timeout."""
        if not by_cancel:
            return "timed_out", f"step timed out after {self.step_timeout(step) or 0:g}s"
        if self.handle.cancel_reason == "timed_out":
            return "timed_out", "run timed out"
        return "cancelled", "cancelled"

    def attempt_finished(
        self,
        step: Step,
        attempt: int,
        launch: Launch,
        ending: Ending,
        stopped: tuple[str, str] | None,
    ) -> Outcome:
        returncode = ending.exit_code
        exit_code: int | None = returncode
        if stopped is not None:
            # Ended by toolrun: what the tool exited with says nothing of the tool.
            status, error = stopped
            exit_code = None
        elif ending.lost:
            status, error = "worker_lost", ending.failure or "its worker was lost"
        elif ending.failure is not None or returncode is None:
            status, error = "failed", ending.failure or "ended without an exit code"
            exit_code = None
        elif returncode == 0:
            status, error = "succeeded", None
        else:
            status, error = "failed", exit_description(returncode)
        outputs = ending.outputs
        if ending.problem is not None:
            self.channel.emit(ev.MESSAGE, step.id, attempt, level="warning", text=ending.problem)
        self.channel.emit(
            ev.STEP_FINISHED,
            step.id,
            attempt,
            status=status,
            exit_code=exit_code,
            error=error,
            duration=round(time.monotonic() - launch.started, 3),
            outputs=outputs,
        )
        return status, exit_code, error, outputs

    def start_failed(
        self, step: Step, attempt: int, argv: list[str], error: str, *, emitted: bool = False
    ) -> Outcome:
        if not emitted:
            self.channel.emit(ev.STEP_STARTED, step.id, attempt, argv=argv)
        error = error if error.startswith("cannot start") else f"cannot start {error}"
        self.channel.emit(
            ev.STEP_FINISHED,
            step.id,
            attempt,
            status="failed",
            exit_code=None,
            error=error,
            duration=0.0,
            outputs={},
        )
        return "failed", None, error, {}

    def _env(
        self, plan: PlannedStep, context: Context, attempt: int, output_file: Path
    ) -> dict[str, str]:
        tool = plan.tool
        assert tool is not None
        platform = current_platform()
        toolchain_env = context.values["env"]
        own = {
            "TOOLRUN_RUN_ID": self.run_id,
            "TOOLRUN_STEP": plan.id,
            "TOOLRUN_ATTEMPT": str(attempt),
            "TOOLRUN_OUTPUT": str(output_file),
            "TOOLRUN_WORKSPACE": str(self.workspace),
        }
        if tool.manifest.command and tool.manifest.command[0] == "{python}":
            # Python tools: output as it is printed, and no byte code written into tool
            # folders (so any found there was put there, and refuses the tool: tools/installer.py).
            own.update(PYTHONUNBUFFERED="1", PYTHONDONTWRITEBYTECODE="1")
        return step_env(
            # A WASM tool sees only the env the step gives it: nothing of this machine's.
            {} if tool.manifest.is_wasm else inherited_env(os.environ),
            tool.manifest.env_for(platform),
            toolchain_env,
            {k: t.render(context) for k, t in plan.step.env.items()},
            self.handle.options.caller_env,
            own,
        )

    # -- output -------------------------------------------------------------------------------

    def check_storage(self) -> None:
        """Stop the run, once, if its log could not be written: a run whose output is lost
        as it goes must not go on unrecorded."""
        failure = self.channel.log.failure
        if failure is None or self.handle.storage_error is not None:
            return
        reason = failure.strerror or str(failure)
        error = StorageError(
            f"cannot write {self.channel.log.path}: {reason}",
            hint="free some space (toolrun history prune removes old runs), then run it again",
        )
        self.handle.storage_error = error
        self.channel.emit(ev.MESSAGE, level="error", text=f"{error.message}: run stopped")
        self.handle.cancel(reason="failed")

    def output(self, step_id: str, attempt: int, stream: str, lines: list[str]) -> None:
        self.check_storage()
        if self.truncated:
            if (step_id, attempt) not in self.marked:
                # Each step whose output the cap hides says so once, wherever it is shown.
                self.marked.add((step_id, attempt))
                self.channel.emit(
                    ev.OUTPUT_TRUNCATED,
                    step_id,
                    attempt,
                    text=f"output not kept: the run's {self.settings.output_cap} bytes of "
                    "output are used up; the tool keeps running",
                )
            return
        size = sum(map(len, lines)) + len(lines)
        if self.output_bytes + size > self.settings.output_cap:
            room = self.settings.output_cap - self.output_bytes
            kept: list[str] = []
            for line in lines:
                room -= len(line) + 1
                if room < 0:
                    break
                kept.append(line)
            if kept:
                self._store_lines(step_id, attempt, stream, kept)
            self.truncated = True
            self.marked.add((step_id, attempt))
            self.channel.emit(
                ev.OUTPUT_TRUNCATED,
                step_id,
                attempt,
                text=f"output truncated: more than {self.settings.output_cap} bytes; "
                "the tool keeps running",
            )
            return
        self.output_bytes += size
        self._store_lines(step_id, attempt, stream, lines)

    def _store_lines(self, step_id: str, attempt: int, stream: str, lines: list[str]) -> None:
        self.channel.emit(ev.OUTPUT, step_id, attempt, stream=stream, lines=lines)
        if self.text_log is not None:
            prefix = f"[{step_id}] " if self.prefix_lines else ""
            self.text_log.write("".join(f"{prefix}{line}\n" for line in lines))
