"""The engine: a run of a toolchain, its steps, retries, timeouts and cancel.

``Engine.prepare`` checks everything that can be checked before a process starts (params,
tools and versions, installing what is missing) and records the run; ``Engine.execute`` runs
it in an event loop, emitting events through the run's channel (``async_driver``). A run of one
plain step can also run on the calling thread (``Engine.execute_here``, ``threaded_driver``):
``toolrun exec`` takes that path because importing asyncio alone costs a third of its budget.
Front ends subscribe to the events; none of them touches a process.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable

from ..digests import sha256_hex
from ..errors import NotFoundError, StorageError, ToolrunError, UsageError
from ..history.ownership import OwnerLock
from ..history.store import RunRecord, StepRecord, Store
from ..policy import AcceptedEnv, check_relative_arg, check_remote_env
from ..records import field, record
from ..selectors import Selector, Unplaceable
from ..toolchains.expressions import Context
from ..toolchains.model import ADHOC_MARK, Step, Toolchain, bind_params
from ..tools.installer import InstalledTool
from ..tools.manifest import current_platform
from ..tools.resolver import ToolResolver
from ..tools.versions import parse_spec
from .events import EventLog, RunChannel

# `typing` costs milliseconds at start-up; annotations alone never need it at run time.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from ..executors.protocol import BlockingExecutor, Executor
    from ..tools.lockfile import LockInUse

DEFAULT_OUTPUT_CAP = 1024**3


@record(frozen=True)
class EngineSettings:
    """How the engine runs steps, from config.toml."""

    output_cap: int = DEFAULT_OUTPUT_CAP  # bytes of output stored per run
    log_format: str = "json"  # json: events.jsonl; text or both: output.log as well
    kill_grace: float = 5.0  # seconds between the polite signal and the forceful one
    orphan_grace: float = 1.0  # seconds a finished step's children may keep its output open
    cancel_poll: float = 0.5  # seconds between checks for a cancel from another process
    python: str = sys.executable
    accept_env: tuple[str, ...] = ()  # env names any remote caller may set (config.toml)
    pause_limit: float = 86400.0  # seconds a run may stay paused before it is cancelled
    # config.toml's: for a toolchain (a step) that sets no timeout of its own
    default_timeout: float | None = None
    default_step_timeout: float | None = None


@record(frozen=True)
class RunOptions:
    """Who started a run and how: the parts of a run that are not its toolchain."""

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
    runs_on: Selector = Selector()  # `run --on`, the body's runs_on: for steps without their own
    priority: int | None = None  # `run --priority`, the body's: else the toolchain's
    lock: LockInUse | None = None  # `run --locked`: exactly the lock's versions and digests


@record(frozen=True)
class PlannedStep:
    """A step and the installed tool it will run."""

    step: Step
    tool: InstalledTool | None  # None when carried over from an earlier run

    @property
    def id(self) -> str:
        return self.step.id


@record
class RunHandle:
    """A recorded run, ready to execute or executing; cancel it from anywhere in-process."""

    record: RunRecord
    toolchain: Toolchain
    params: dict[str, Any]
    steps: list[PlannedStep]
    options: RunOptions
    channel: RunChannel
    owner: OwnerLock
    # A threading.Event, so that a run driven without an event loop can wait on it too; an
    # event loop learns of a cancel through ``on_cancel``.
    cancel_event: threading.Event = field(default_factory=threading.Event)
    force: bool = False
    cancel_reason: str = "cancelled"  # or "timed_out", or "failed" (storage_error)
    # The run's log could not be written (a full disk): the run was stopped, and front ends
    # that can report it as toolrun's own error (the CLI: exit code 6) do.
    storage_error: StorageError | None = None
    # Front ends that pass output straight through (toolrun exec) get the raw bytes here.
    on_raw: Callable[[str, bytes], None] | None = None
    on_cancel: list[Callable[[], None]] = field(default_factory=list)
    # What this process wants of the run: 0 go on, 1 pause, 2 pause and freeze the running
    # steps (runs/pausing.py); the driver acts on it, and on what other processes ask.
    wanted: int = 0
    on_control: list[Callable[[], None]] = field(default_factory=list)

    @property
    def id(self) -> str:
        return self.record.id

    def control(self, wanted: int) -> None:
        """Pause (1), pause and freeze (2) or resume (0) the run, from this process."""
        self.wanted = wanted
        for callback in self.on_control:
            callback()

    def cancel(self, *, force: bool = False, reason: str = "cancelled") -> None:
        if not self.cancel_event.is_set():
            self.cancel_reason = reason
        self.force = self.force or force
        self.cancel_event.set()
        for callback in self.on_cancel:
            callback()


def tool_digest(tool: InstalledTool) -> str:
    """One sha256 naming exactly the files a tool version ran with, wherever it came from."""
    listing = "".join(f"{path}\0{digest}\n" for path, digest in sorted(tool.manifest.files.items()))
    return sha256_hex(f"{tool.name}\0{tool.version}\n{listing}".encode())


class Engine:
    """Runs toolchains: prepares a run, then drives its steps, each attempt handed to the
    ``executor`` (``blocking``: the same executor's form for a caller without an event loop,
    when it has one)."""

    def __init__(
        self,
        store: Store,
        resolver: ToolResolver,
        settings: EngineSettings | None = None,
        *,
        executor: Executor,
        blocking: BlockingExecutor | None = None,
    ) -> None:
        self.store = store
        self.resolver = resolver
        self.settings = settings or EngineSettings()
        self.executor = executor
        self.blocking = blocking
        # Called with each run's final record as it is stored (notifications: automation/).
        self.on_finished: list[Callable[[RunRecord, Toolchain], None]] = []

    # -- before anything runs -----------------------------------------------------------------

    def prepare(
        self,
        toolchain: Toolchain,
        given: dict[str, Any],
        options: RunOptions | None = None,
        *,
        may_install: bool = True,
    ) -> RunHandle:
        """Check params and resolve (installing) every tool, then record the run as queued.

        Without ``may_install``, a tool that would have to be installed first raises
        ``resolver.WouldInstall`` before anything is recorded.
        """
        options = options or RunOptions()
        params = bind_params(toolchain, given)
        platform = current_platform()
        planned: list[PlannedStep] = []
        problems: list[str] = []
        first_error: type[ToolrunError] = UsageError
        problems.extend(unplaceable(toolchain, options, getattr(self.executor, "never", None)))
        if problems:
            first_error = Unplaceable
        for step in toolchain.steps:
            step = step.for_platform(platform)
            if step.id in options.carried:
                planned.append(PlannedStep(step, None))
                continue
            pinned = options.pinned.get(step.id)
            try:
                if options.lock is not None:
                    from ..tools.lockfile import locked_tool

                    tool = locked_tool(
                        options.lock, step.spec_text, self.resolver, may_install=may_install
                    )
                else:
                    spec = parse_spec(
                        step.cmd, version=f"=={pinned}" if pinned else step.version or None
                    )
                    tool = self.resolver.resolve(
                        spec, install=True, pre=options.pre, may_install=may_install
                    )
                self.resolver.installer.check_intact(tool)
            except ToolrunError as exc:
                first_error = type(exc) if not problems else first_error
                problems.append(f"step {step.id!r} ({step.spec_text}): {exc.message}")
                continue
            missing = missing_program(tool, step, toolchain, platform)
            if missing is not None:
                first_error = NotFoundError if not problems else first_error
                problems.append(f"step {step.id!r} ({step.spec_text}): {missing}")
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
        if options.remote:
            check_remote_env(options.caller_env, self.accepted_env(toolchain, planned))
        digest = toolchain.sha256
        record, owner = self.store.create_run(
            toolchain=toolchain.name,
            params=params,
            steps=[(p.id, p.step.cmd, p.step.spec_text) for p in planned],
            resolved={
                p.id: (p.tool.version, tool_digest(p.tool)) for p in planned if p.tool is not None
            },
            origin=options.origin,
            requester=options.requester,
            toolchain_sha256=digest,
            lock_sha256=options.lock.sha256 if options.lock is not None else None,
            rerun_of=options.rerun_of,
            priority=toolchain.priority if options.priority is None else options.priority,
        )
        run_dir = self.store.run_dir(record.id)
        self.store.save_toolchain(record.id, toolchain.text, digest)
        if options.workspace_from:
            import shutil

            shutil.copytree(
                self.store.run_dir(options.workspace_from) / "work",
                run_dir / "work",
                dirs_exist_ok=True,
            )
        for plan in planned:
            if plan.tool is not None:
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

    def accepted_env(self, toolchain: Toolchain, planned: list[PlannedStep]) -> AcceptedEnv:
        tools = {
            (f"{p.tool.name} {p.tool.version}", p.tool.manifest.accept_env)
            for p in planned
            if p.tool is not None
        }
        return AcceptedEnv(
            config=self.settings.accept_env,
            toolchain=toolchain.accept_env,
            toolchain_name="" if toolchain.is_adhoc else toolchain.name,
            tools=tuple(sorted(tools)),
        )

    # -- running ------------------------------------------------------------------------------

    async def execute(self, handle: RunHandle) -> RunRecord:
        """Run every step as ``needs`` allow; returns the run's final record."""
        from .async_driver import AsyncExecution

        return await AsyncExecution(self, handle).run()

    def execute_here(self, handle: RunHandle) -> RunRecord:
        """Run a one-step run on this thread, without an event loop (see ``can_execute_here``)
        when the executor can; in one made for it otherwise."""
        if self.blocking is None:
            import asyncio

            return asyncio.run(self.execute(handle))
        from .threaded_driver import ThreadedExecution

        return ThreadedExecution(self, handle).run()


def missing_program(
    tool: InstalledTool, step: Step, toolchain: Toolchain, platform: str
) -> str | None:
    """Why a system tool's program cannot be started here (not on PATH), known before any
    step runs; None when it can, or when PATH is the toolchain's to decide at run time."""
    if not tool.manifest.is_system or "PATH" in step.env or "PATH" in toolchain.env:
        return None
    import os
    import shutil

    program = tool.manifest.command_for(platform, tool_dir=tool.path, python=sys.executable)[0]
    path = tool.manifest.env_for(platform).get("PATH", os.environ.get("PATH", os.defpath))
    if shutil.which(program, path=path) is not None:
        return None
    return f"{program}: not found on PATH (the system tool {tool.name} {tool.version} wraps it)"


def can_execute_here(handle: RunHandle) -> bool:
    """One step with no condition: nothing to schedule, so no event loop is needed."""
    return (
        len(handle.steps) == 1
        and handle.steps[0].step.condition is None
        and not (handle.options.carried)
    )


def exec_toolchain(spec_text: str, args: list[str]) -> Toolchain:
    """A one-step toolchain for ``toolrun exec`` (and the daemon's ``/cmd``): args literal."""
    import json

    from ..toolchains.expressions import Template

    spec = parse_spec(spec_text)
    step = Step(
        id=spec.name,
        cmd=spec.name,
        version=spec.constraint,
        args=tuple(Template((arg,)) for arg in args),
        needs=(),
    )
    text = (
        f"{ADHOC_MARK}{spec_text}\ntoolchain:\n  - {spec.name}:\n      cmd: {spec.name}\n"
        f"      version: {json.dumps(spec.constraint or 'latest')}\n"
        f"      args: {json.dumps(args, ensure_ascii=False)}\n"
    )
    return Toolchain(name=spec.name, text=text, steps=(step,))


def where_to_run(step: Step, toolchain: Toolchain, options: RunOptions) -> Selector:
    """The step's own ``runs_on``, else the run's (``--on``), else the toolchain's."""
    return step.runs_on or options.runs_on or toolchain.runs_on


def unplaceable(
    toolchain: Toolchain,
    options: RunOptions,
    never: Callable[[Selector], str | None] | None = None,
) -> list[str]:
    """The steps that cannot run, said why: with no cluster to send a step to, the machine's
    own labels (os=, arch=) must meet where it is to run; with one (``never``: the cluster's
    rule), only a selector no worker could ever meet is refused, the rest wait for workers."""
    selectors = [(step, where_to_run(step, toolchain, options)) for step in toolchain.steps]
    if not any(selector for _, selector in selectors):
        return []
    if never is not None:
        found = [(step, never(selector)) for step, selector in selectors if selector]
        return [f"step {step.id!r}: {why}" for step, why in found if why is not None]
    from ..selectors import machine_labels

    labels = machine_labels()
    shown = ", ".join(f"{key}={value}" for key, value in labels.items())
    return [
        f"step {step.id!r}: runs_on {', '.join(map(str, selector.unmet(labels)))}: "
        f"this machine is {shown}, and there is no cluster to send it to"
        for step, selector in selectors
        if selector and not selector.matches(labels)
    ]
