"""The engine: a run of a toolchain, its steps, retries, timeouts and cancel.

``Engine.prepare`` checks everything that can be checked before a process starts (params,
tools and versions, installing what is missing) and records the run; ``Engine.execute`` runs
it, emitting events through the run's channel. Front ends subscribe to those events; none of
them touches a process.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import events as ev
from .errors import ToolrunError, UsageError
from .events import EventLog, RunChannel
from .expressions import STATUS_FUNCTIONS, Context, calls, truthy
from .installer import InstalledTool
from .manifest import current_platform
from .ownership import OwnerLock
from .plan import needs_outcome, ready
from .process import StartError, StepProcess, exit_description
from .resolver import ToolResolver
from .sandbox import check_relative_arg, check_remote_env, inherited_env, step_env
from .store import RunRecord, StepRecord, Store
from .toolchain import Step, Toolchain, bind_params
from .versions import parse_spec

EXIT_CODES = {"succeeded": 0, "failed": 1, "timed_out": 124, "cancelled": 130, "interrupted": 1}
OUTCOMES = {
    "succeeded": "success",
    "failed": "failure",
    "timed_out": "failure",
    "skipped": "skipped",
    "cancelled": "cancelled",
}
DEFAULT_OUTPUT_CAP = 1024**3


@dataclass(frozen=True)
class EngineSettings:
    output_cap: int = DEFAULT_OUTPUT_CAP  # bytes of output stored per run
    log_format: str = "json"  # json: events.jsonl; text or both: output.log as well
    kill_grace: float = 5.0  # seconds between the polite signal and the forceful one
    orphan_grace: float = 1.0  # seconds a finished step's children may keep its output open
    cancel_poll: float = 0.5  # seconds between checks for a cancel from another process
    python: str = sys.executable


@dataclass(frozen=True)
class RunOptions:
    origin: str = "cli"
    requester: str = ""
    timeout: float | None = None  # overrides the toolchain's
    caller_env: dict[str, str] = field(default_factory=dict)
    remote: bool = False  # apply the rules for callers from another machine
    pinned: dict[str, str] = field(default_factory=dict)  # step id -> exact version (rerun)
    carried: dict[str, StepRecord] = field(default_factory=dict)  # steps kept (from-failed)
    workspace_from: str | None = None  # copy this run's workspace first
    rerun_of: str | None = None
    pre: bool = False


@dataclass(frozen=True)
class PlannedStep:
    step: Step
    tool: InstalledTool | None  # None when carried over from an earlier run

    @property
    def id(self) -> str:
        return self.step.id


@dataclass
class RunHandle:
    """A recorded run, ready to execute or executing; cancel it from anywhere in-process."""

    record: RunRecord
    toolchain: Toolchain
    params: dict[str, Any]
    steps: list[PlannedStep]
    options: RunOptions
    channel: RunChannel
    owner: OwnerLock
    cancel_event: asyncio.Event = field(default_factory=asyncio.Event)
    force: bool = False
    cancel_reason: str = "cancelled"  # or "timed_out"
    # Front ends that pass output straight through (toolrun exec) get the raw bytes here.
    on_raw: Callable[[str, bytes], None] | None = None

    @property
    def id(self) -> str:
        return self.record.id

    def cancel(self, *, force: bool = False, reason: str = "cancelled") -> None:
        if not self.cancel_event.is_set():
            self.cancel_reason = reason
        self.force = self.force or force
        self.cancel_event.set()


def tool_digest(tool: InstalledTool) -> str:
    """One sha256 naming exactly the files a tool version ran with, wherever it came from."""
    listing = "".join(f"{path}\0{digest}\n" for path, digest in sorted(tool.manifest.files.items()))
    return hashlib.sha256(f"{tool.name}\0{tool.version}\n{listing}".encode()).hexdigest()


class Engine:
    def __init__(
        self, store: Store, resolver: ToolResolver, settings: EngineSettings | None = None
    ) -> None:
        self.store = store
        self.resolver = resolver
        self.settings = settings or EngineSettings()

    # -- before anything runs -----------------------------------------------------------------

    def prepare(
        self, toolchain: Toolchain, given: dict[str, Any], options: RunOptions | None = None
    ) -> RunHandle:
        """Check params and resolve (installing) every tool, then record the run as queued."""
        options = options or RunOptions()
        params = bind_params(toolchain, given)
        platform = current_platform()
        if options.remote:
            check_remote_env(options.caller_env)
        planned: list[PlannedStep] = []
        problems: list[str] = []
        first_error: type[ToolrunError] = UsageError
        for step in toolchain.steps:
            step = step.for_platform(platform)
            if step.id in options.carried:
                planned.append(PlannedStep(step, None))
                continue
            pinned = options.pinned.get(step.id)
            try:
                spec = parse_spec(
                    step.cmd, version=f"=={pinned}" if pinned else step.version or None
                )
                tool = self.resolver.resolve(spec, install=True, pre=options.pre)
            except ToolrunError as exc:
                first_error = type(exc) if not problems else first_error
                problems.append(f"step {step.id!r} ({step.spec_text}): {exc.message}")
                continue
            if options.remote:
                for arg in step.args:
                    if arg.is_plain:
                        try:
                            check_relative_arg(arg.render(Context({})))
                        except UsageError as exc:
                            problems.append(f"step {step.id!r}: {exc.message}")
            planned.append(PlannedStep(step, tool))
        if problems:
            # The first problem's kind decides the exit code; the message lists them all.
            raise first_error("nothing was run:\n" + "\n".join(problems))
        record, owner = self.store.create_run(
            toolchain=toolchain.name,
            params=params,
            steps=[(p.id, p.step.cmd, p.step.spec_text) for p in planned],
            origin=options.origin,
            requester=options.requester,
            toolchain_sha256=toolchain.sha256,
            rerun_of=options.rerun_of,
        )
        run_dir = self.store.run_dir(record.id)
        (run_dir / "toolchain.yaml").write_text(toolchain.text, encoding="utf-8")
        (run_dir / "outputs").mkdir()
        if options.workspace_from:
            shutil.copytree(
                self.store.run_dir(options.workspace_from) / "work",
                run_dir / "work",
                dirs_exist_ok=True,
            )
        for plan in planned:
            if plan.tool is not None:
                self.store.update_step(
                    record.id, plan.id, version=plan.tool.version, sha256=tool_digest(plan.tool)
                )
                continue
            kept = options.carried[plan.id]
            self.store.update_step(
                record.id,
                plan.id,
                version=kept.version,
                sha256=kept.sha256,
                status="succeeded",
                exit_code=kept.exit_code,
                outputs=kept.outputs,
                error=f"kept from run {options.rerun_of}",
            )
        channel = RunChannel(EventLog(run_dir / "events.jsonl"))
        return RunHandle(record, toolchain, params, planned, options, channel, owner)

    # -- running ------------------------------------------------------------------------------

    async def execute(self, handle: RunHandle) -> RunRecord:
        """Run every step as ``needs`` allow; returns the run's final record."""
        return await _Execution(self, handle).run()


class _Execution:
    """The state of one run while it executes."""

    def __init__(self, engine: Engine, handle: RunHandle) -> None:
        self.engine = engine
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
        self.prefix_lines = len(handle.steps) > 1
        self.text_log = None
        if self.settings.log_format in ("text", "both"):
            self.text_log = (self.run_dir / "output.log").open("a", encoding="utf-8")
        for step_id, record in handle.options.carried.items():
            self.states[step_id] = "succeeded"
            self.results[step_id] = {
                "outputs": record.outputs,
                "outcome": "success",
                "exit_code": record.exit_code,
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

    async def run(self) -> RunRecord:
        now = time.time()
        self.store.update_run(self.run_id, status="running", started_at=now)
        self.channel.emit(
            ev.RUN_STARTED,
            run=self.run_id,
            toolchain=self.handle.toolchain.name,
            params=self.handle.params,
            steps=self.order,
        )
        timeout = self.handle.options.timeout or self.handle.toolchain.timeout
        watchers = [
            asyncio.ensure_future(self._watch_cancel_requests()),
            asyncio.ensure_future(self._flush_periodically()),
        ]
        if timeout:
            watchers.append(asyncio.ensure_future(self._watch_timeout(timeout)))
        try:
            await self._schedule()
        finally:
            for watcher in watchers:
                watcher.cancel()
            await asyncio.gather(*watchers, return_exceptions=True)
        return self._finish()

    async def _flush_periodically(self) -> None:
        # Output is written in batches; a tool that prints a line and then goes quiet must
        # still have that line on disk for readers in other processes.
        while True:
            await asyncio.sleep(ev.FLUSH_SECONDS)
            self.channel.log.flush()

    async def _watch_timeout(self, timeout: float) -> None:
        await asyncio.sleep(timeout)
        self.channel.emit(ev.MESSAGE, level="error", text=f"run timed out after {timeout:g}s")
        self.handle.cancel(reason="timed_out")

    async def _watch_cancel_requests(self) -> None:
        # `toolrun cancel ID` from another process marks the run in the store.
        while True:
            await asyncio.sleep(self.settings.cancel_poll)
            requested = await asyncio.get_running_loop().run_in_executor(
                None, self.store.cancel_requested, self.run_id
            )
            if requested:
                self.channel.emit(ev.MESSAGE, level="warning", text="cancel requested")
                self.handle.cancel()
                return

    async def _schedule(self) -> None:
        running: dict[str, asyncio.Future[str]] = {}
        cancelled = asyncio.ensure_future(self.handle.cancel_event.wait())
        try:
            while True:
                if self.handle.cancel_event.is_set():
                    for step_id, state in self.states.items():
                        if state == "pending":
                            self._skip(step_id, "run cancelled", status="cancelled")
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
                should_run, reason = self._decide(step)
                if not should_run:
                    self._skip(step_id, reason)
                    changed = True
                    continue
                self.states[step_id] = "running"
                running[step_id] = asyncio.ensure_future(self._run_step(self.plans[step_id]))

    def _decide(self, step: Step) -> tuple[bool, str]:
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

    def _skip(self, step_id: str, reason: str, *, status: str = "skipped") -> None:
        self.states[step_id] = status
        self.results[step_id] = {"outputs": {}, "outcome": OUTCOMES[status], "exit_code": None}
        self.store.update_step(self.run_id, step_id, status=status, error=reason)
        self.channel.emit(ev.STEP_SKIPPED, step_id, status=status, reason=reason)

    async def _run_step(self, plan: PlannedStep) -> str:
        step = plan.step
        assert plan.tool is not None
        attempts = step.retries.max + 1
        status, exit_code, error = "failed", None, None
        started = time.time()
        self.store.update_step(self.run_id, step.id, status="running", started_at=started)
        for attempt in range(1, attempts + 1):
            if attempt > 1:
                delay = step.retries.delay_before(attempt)
                self.channel.emit(
                    ev.MESSAGE,
                    step.id,
                    attempt,
                    level="warning",
                    text=f"retrying in {delay:g}s (attempt {attempt} of {attempts})",
                )
                if await self._cancelled_within(delay):
                    status = "cancelled"
                    break
            status, exit_code, error, outputs = await self._attempt(plan, attempt)
            self.store.update_step(self.run_id, step.id, attempts=attempt)
            if status in ("succeeded", "cancelled") or self.handle.cancel_event.is_set():
                break
            if error and error.startswith("cannot start"):
                break  # starting again would fail the same way
        else:
            outputs = {}
        if status != "succeeded" and step.continue_on_error and status != "cancelled":
            self.allowed_failures.add(step.id)
        self.results[step.id] = {
            "outputs": outputs,
            "outcome": OUTCOMES[status],
            "exit_code": exit_code,
        }
        self.store.update_step(
            self.run_id,
            step.id,
            status=status,
            exit_code=exit_code,
            finished_at=time.time(),
            outputs=outputs,
            error=error,
            allowed_failure=int(step.id in self.allowed_failures),
        )
        return status

    async def _cancelled_within(self, seconds: float) -> bool:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.handle.cancel_event.wait(), timeout=seconds)
        return self.handle.cancel_event.is_set()

    async def _attempt(
        self, plan: PlannedStep, attempt: int
    ) -> tuple[str, int | None, str | None, dict[str, str]]:
        step, tool = plan.step, plan.tool
        assert tool is not None
        context = self.context(step)
        output_file = self.run_dir / "outputs" / f"{step.id}.{attempt}.env"
        output_file.touch()
        argv = tool.manifest.command_for(
            current_platform(), tool_dir=tool.path, python=self.settings.python
        ) + [arg.render(context) for arg in step.args]
        env = self._env(plan, context, attempt, output_file)
        if tool.manifest.is_system:
            found = shutil.which(argv[0], path=env.get("PATH"))
            if found is None:
                return self._start_failed(step, attempt, argv, f"{argv[0]}: not found on PATH")
            argv[0] = found
        if self.handle.options.remote:
            for arg in argv[len(argv) - len(step.args) :]:
                try:
                    check_relative_arg(arg)
                except UsageError as exc:
                    return self._start_failed(step, attempt, argv, exc.message)
        self.channel.emit(
            ev.STEP_STARTED,
            step.id,
            attempt,
            tool=tool.name,
            version=tool.version,
            argv=argv,
        )
        process = StepProcess(
            argv,
            cwd=self.workspace,
            env=env,
            encoding=tool.manifest.encoding,
            on_lines=lambda stream, lines: self._output(step.id, attempt, stream, lines),
            on_raw=self.handle.on_raw,
        )
        started = time.monotonic()
        try:
            await process.start()
        except StartError as exc:
            return self._start_failed(step, attempt, argv, f"cannot start {exc}", emitted=True)
        running = asyncio.ensure_future(
            process.run(
                orphan_grace=self.settings.orphan_grace, kill_grace=self.settings.kill_grace
            )
        )
        cancelled = asyncio.ensure_future(self.handle.cancel_event.wait())
        done, _ = await asyncio.wait(
            [running, cancelled], timeout=step.timeout, return_when=asyncio.FIRST_COMPLETED
        )
        cancelled.cancel()
        status: str | None = None
        error: str | None = None
        if running not in done:
            if cancelled in done:
                status = "timed_out" if self.handle.cancel_reason == "timed_out" else "cancelled"
                error = "run timed out" if status == "timed_out" else "cancelled"
            else:
                status, error = "timed_out", f"step timed out after {step.timeout:g}s"
            grace = 0.0 if self.handle.force else self.settings.kill_grace
            await process.terminate(grace=grace)
        returncode = await running
        if status is None:
            status = "succeeded" if returncode == 0 else "failed"
            error = None if returncode == 0 else exit_description(returncode)
        outputs = _read_outputs(output_file)
        self.channel.emit(
            ev.STEP_FINISHED,
            step.id,
            attempt,
            status=status,
            exit_code=returncode,
            error=error,
            duration=round(time.monotonic() - started, 3),
            outputs=outputs,
        )
        return status, returncode, error, outputs

    def _start_failed(
        self, step: Step, attempt: int, argv: list[str], error: str, *, emitted: bool = False
    ) -> tuple[str, int | None, str | None, dict[str, str]]:
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
            # Python tools: output as it is printed, and no bytecode written into tool folders.
            own.update(PYTHONUNBUFFERED="1", PYTHONDONTWRITEBYTECODE="1")
        return step_env(
            inherited_env(os.environ),
            tool.manifest.env_for(platform),
            toolchain_env,
            {k: t.render(context) for k, t in plan.step.env.items()},
            self.handle.options.caller_env,
            own,
        )

    def _output(self, step_id: str, attempt: int, stream: str, lines: list[str]) -> None:
        if self.truncated:
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

    def _finish(self) -> RunRecord:
        statuses = self.states.values()
        if self.handle.cancel_event.is_set():
            status = self.handle.cancel_reason
        elif any(
            s in ("failed", "timed_out") and step_id not in self.allowed_failures
            for step_id, s in self.states.items()
        ):
            status = "failed"
        else:
            status = "succeeded"
        for step_id, state in self.states.items():
            if state in ("pending", "running"):
                self.store.update_step(self.run_id, step_id, status="cancelled")
        now = time.time()
        duration = now - (self.store.require_run(self.run_id).started_at or now)
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
        self.store.update_run(
            self.run_id, status=status, finished_at=now, exit_code=EXIT_CODES[status]
        )
        self.store.measure(self.run_id)
        self.handle.owner.release()
        return self.store.require_run(self.run_id)


def _read_outputs(path: Path) -> dict[str, str]:
    """``KEY=VALUE`` lines a step wrote to ``$TOOLRUN_OUTPUT``."""
    outputs: dict[str, str] = {}
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return outputs
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and key.strip() and not key.lstrip().startswith("#"):
            outputs[key.strip()] = value
    return outputs


def exec_toolchain(spec_text: str, args: list[str]) -> Toolchain:
    """A one-step toolchain for ``toolrun exec`` (and the daemon's ``/cmd``): args literal."""
    import json

    from .expressions import Template

    spec = parse_spec(spec_text)
    step = Step(
        id=spec.name,
        cmd=spec.name,
        version=spec.constraint,
        args=tuple(Template((arg,)) for arg in args),
        needs=(),
    )
    text = (
        f"# toolrun exec {spec_text}\ntoolchain:\n  - {spec.name}:\n      cmd: {spec.name}\n"
        f"      version: {json.dumps(spec.constraint or 'latest')}\n"
        f"      args: {json.dumps(args, ensure_ascii=False)}\n"
    )
    return Toolchain(name=spec.name, text=text, steps=(step,))
