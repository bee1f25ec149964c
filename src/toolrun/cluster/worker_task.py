"""One attempt, run on a worker: the tool made ready, the process run with the local
executor, its output sent back in batches, a cancel obeyed, a copy of the log kept here.

Dask runs ``run_attempt`` in one of the worker's threads (a ``slot`` taken). A Dask task
cannot be interrupted, so the attempt watches its cancel events itself (spec.py) and ends
its process tree with the local executor's containment, as a local run would.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from ..errors import IntegrityError, ToolrunError
from ..executors.local import LocalExecutor
from ..executors.protocol import Launch, Sandbox, Sink, StartError
from ..policy import inherited_env, step_env
from ..records import record
from ..tools.manifest import current_platform
from .spec import TOPIC, AttemptSpec, cancel_event, kill_event
from .workspaces import CarryFailed, Manifest, Packed, WorkspaceError, pack, unpack

if TYPE_CHECKING:
    from ..tools.installer import InstalledTool, Installer
    from ..tools.registry import Registry

BATCH_BYTES = 256 * 1024  # a batch this big goes at once, whatever its age


@record
class WorkerHome:
    """What the ``toolrun worker`` process gives its attempts: its name, its folders, its
    tools and its own registries, and how long a polite end waits."""

    name: str
    runs_dir: Path  # <TOOLRUN_HOME>/worker/runs/<run>/: the workspace and the log copies
    installer: Installer
    registries: list[Registry]
    kill_grace: float = 5.0


HOME: WorkerHome | None = None  # set by worker.py when the worker starts
_install_lock = threading.Lock()


def run_attempt(spec: AttemptSpec, carried: Packed | None = None) -> Packed | None:
    """The task Dask runs. Everything the daemon needs travels as messages (spec.py). With
    ``carried`` (the run's workspace, packed at its home) and this worker elsewhere, the
    workspace is unpacked here first, and what the step made is returned packed, for the
    daemon to have it unpacked at home (Dask moves both, worker to worker)."""
    from distributed import get_client, get_worker

    worker = get_worker()
    home = HOME
    assert home is not None, "run_attempt runs only in a toolrun worker"
    sender = Sender(spec.key, lambda message: worker.log_event(TOPIC, message))
    sender.address = worker.address
    sender.client = get_client()
    sender.batch_seconds = spec.batch_seconds
    try:
        return _run(spec, home, sender, carried)
    except BaseException as exc:  # whatever happens, the daemon hears the end
        sender.end(error=f"the worker failed: {exc.__class__.__name__}: {exc}")
        raise


def pack_workspace(run_id: str, cap: int) -> Packed:
    """A task on a run's home: its workspace, to carry to a step elsewhere or to the daemon."""
    from distributed import get_worker

    home = HOME
    assert home is not None, "pack_workspace runs only in a toolrun worker"
    try:
        return pack(home.runs_dir / run_id / "work", cap, source=get_worker().address)
    except (WorkspaceError, OSError) as exc:
        raise CarryFailed(f"on {home.name}: {_reason(exc)}") from None


def unpack_workspace(run_id: str, results: Packed | None, cap: int) -> int:
    """A task on a run's home: a step's results, from the worker it ran on; the files written."""
    home = HOME
    assert home is not None, "unpack_workspace runs only in a toolrun worker"
    if results is None:
        return 0  # the step ran here after all
    try:
        unpack(results, home.runs_dir / run_id / "work", cap)
    except (WorkspaceError, OSError) as exc:
        raise CarryFailed(f"on {home.name}: {_reason(exc)}") from None
    return results.files


def _reason(exc: Exception) -> str:
    if isinstance(exc, ToolrunError):
        return exc.message
    return f"{getattr(exc, 'strerror', None) or exc}"


def _run(
    spec: AttemptSpec, home: WorkerHome, sender: Sender, carried: Packed | None = None
) -> Packed | None:
    try:
        tool = tool_for(spec, home)
    except ToolrunError as exc:
        sender.start(home.name, None, None, None)
        sender.end(error=f"cannot start {spec.tool} {spec.version} on {home.name}: {exc.message}")
        return None
    run_dir = home.runs_dir / spec.run_id
    workspace = run_dir / "work"
    workspace.mkdir(parents=True, exist_ok=True)
    arrived: Manifest | None = None
    if carried is not None and carried.source != sender.address:
        try:
            arrived = unpack(carried, workspace, spec.workspace_cap)
        except (WorkspaceError, OSError) as exc:
            sender.start(home.name, None, tool.version, spec.sha256)
            sender.end(error=f"cannot start: the workspace did not arrive whole: {_reason(exc)}")
            return None
    output_file = run_dir / f"outputs.{spec.step_id}.{spec.attempt}.env"
    platform = current_platform()
    argv = tool.manifest.command_for(platform, tool_dir=tool.path, python=sys.executable)
    argv = [*argv, *spec.args]
    own = {
        "TOOLRUN_RUN_ID": spec.run_id,
        "TOOLRUN_STEP": spec.step_id,
        "TOOLRUN_ATTEMPT": str(spec.attempt),
        "TOOLRUN_OUTPUT": str(output_file),
        "TOOLRUN_WORKSPACE": str(workspace),
        "TOOLRUN_WORKER": home.name,
    }
    if tool.manifest.command and tool.manifest.command[0] == "{python}":
        own.update(PYTHONUNBUFFERED="1", PYTHONDONTWRITEBYTECODE="1")
    inherited = {} if tool.manifest.is_wasm else inherited_env(os.environ)  # WASM: only its own
    env = step_env(inherited, tool.manifest.env_for(platform), spec.env, own)
    if tool.manifest.is_system:
        import shutil

        found = shutil.which(argv[0], path=env.get("PATH"))
        if found is None:
            sender.start(home.name, None, tool.version, spec.sha256)
            sender.end(error=f"cannot start {argv[0]}: not found on PATH on {home.name}")
            return None
        argv[0] = found
    wasm = tool.manifest.wasm
    log_copy = (run_dir / f"{spec.step_id}.{spec.attempt}.log.jsonl").open("wb")
    sender.copy = log_copy
    launch = Launch(
        argv,
        env,
        workspace,
        tool.manifest.encoding,
        output_file,
        label=spec.key.removeprefix("toolrun-"),
        started=time.monotonic(),
        sandbox=Sandbox(wasm.memory, wasm.folders(tool.path)) if wasm is not None else None,
    )
    executor = LocalExecutor(kill_grace=home.kill_grace)
    try:
        attempt = executor.start_blocking(launch, Sink(sender.lines))
    except StartError as exc:
        sender.start(home.name, None, tool.version, spec.sha256)
        sender.end(error=f"cannot start {exc}")
        log_copy.close()
        return None
    sender.start(home.name, attempt.placement.pid, tool.version, spec.sha256)
    watcher = CancelWatcher(spec.key, sender.client)
    watcher.start()
    try:
        while not attempt.pump(sender.batch_seconds):
            sender.flush_if_due()
            if sender.storage_error is not None and not attempt.exited():
                attempt.cancel(grace=0.0)
            elif watcher.cancelled.is_set() and not attempt.exited():
                grace = 0.0 if watcher.killed.is_set() else home.kill_grace
                attempt.cancel(grace=grace, forced=watcher.killed.is_set)
        ending = attempt.ending()
    except BaseException:
        attempt.cancel(grace=0.0)
        raise
    finally:
        watcher.stop()
    results = None
    error = None
    if sender.storage_error is not None:
        error = f"stopped on {home.name}: {sender.storage_error}"
    elif arrived is not None:
        # What the step made goes home; so does what a failed step left, for a retry.
        try:
            results = pack(workspace, spec.workspace_cap, source=sender.address, since=arrived)
        except (WorkspaceError, OSError) as exc:
            error = f"its results cannot be carried back from {home.name}: {_reason(exc)}"
    sender.end(
        exit_code=ending.exit_code, outputs=ending.outputs, problem=ending.problem, error=error
    )
    with contextlib.suppress(OSError):
        log_copy.close()
    return results


def tool_for(spec: AttemptSpec, home: WorkerHome) -> InstalledTool:
    """The exact tool version the daemon planned, installed here if missing (from the
    worker's own registries, then the daemon's), and refused unless it is the same files."""
    from ..runs.engine import tool_digest

    with _install_lock:  # two attempts of one tool install it once
        tool = home.installer.get(spec.tool, spec.version)
        if tool is None:
            tool = _install(spec, home)
    home.installer.check_intact(tool)
    digest = tool_digest(tool)
    if digest != spec.sha256:
        raise IntegrityError(
            f"this worker's {spec.tool} {spec.version} is not the daemon's: sha256 "
            f"{digest[:12]}… here, {spec.sha256[:12]}… there ({tool.source}); refused"
        )
    return tool


def _install(spec: AttemptSpec, home: WorkerHome) -> InstalledTool:
    from ..errors import NotFoundError, RegistryUnavailable
    from ..tools.registry import HttpRegistry

    registries = list(home.registries)
    if spec.registry:
        registries.append(
            HttpRegistry("daemon", spec.registry, timeout=30.0, token=spec.registry_token)
        )
    problems = []
    for registry in registries:
        try:
            if spec.version not in registry.versions(spec.tool):
                continue
            return home.installer.install(registry, spec.tool, spec.version).tool
        except (RegistryUnavailable, IntegrityError) as exc:
            problems.append(f"{registry.name}: {exc.message}")
    where = "; ".join(problems) or f"no registry here offers it ({len(registries)} asked)"
    raise NotFoundError(f"{spec.tool} {spec.version} is not installed here: {where}")


class Sender:
    """Numbers the attempt's messages and sends its output in batches: a batch goes when
    it is ``batch_seconds`` old or ``BATCH_BYTES`` big, so a tool that prints a line and goes
    quiet is seen at once, and one that prints a flood travels in few messages."""

    def __init__(self, key: str, send: Any) -> None:
        self.key = key
        self._send = send
        self.number = 0
        self.batch_seconds = 0.05
        self.pending: list[tuple[str, list[str]]] = []
        self.pending_bytes = 0
        self.oldest = 0.0
        self.copy: Any = None  # the worker's own copy of the log
        self.storage_error: str | None = None  # why the copy could not be written
        self.ended = False
        self.address = ""  # the worker's, as the scheduler knows it
        self.client: Any = None  # the worker's client, for the cancel events

    def message(self, **fields: Any) -> None:
        self._send({"k": self.key, "n": self.number, **fields})
        self.number += 1

    def start(self, worker: str, pid: int | None, version: str | None, sha256: str | None) -> None:
        self.message(
            start={
                "worker": worker,
                "address": self.address,
                "pid": pid,
                "version": version,
                "sha256": sha256,
            }
        )

    def lines(self, stream: str, lines: list[str]) -> None:
        if not self.pending:
            self.oldest = time.monotonic()
        if self.pending and self.pending[-1][0] == stream:
            self.pending[-1][1].extend(lines)
        else:
            self.pending.append((stream, list(lines)))
        self.pending_bytes += sum(map(len, lines)) + len(lines)
        if self.copy is not None:
            try:
                # orjson: the worker's copy of a flood costs a fifth of what json's would.
                self.copy.write(orjson.dumps({"stream": stream, "lines": lines}) + b"\n")
            except OSError as exc:
                self.lost_copy(exc)
        if self.pending_bytes >= BATCH_BYTES:
            self.flush()

    def lost_copy(self, exc: OSError) -> None:
        """The worker's disk is full (or its copy otherwise unwritable): the lines keep going
        to the daemon, and the attempt is stopped, as a local run is when its log fails."""
        if self.storage_error is None:
            name = getattr(self.copy, "name", "its copy of the log")
            self.storage_error = f"cannot write {name}: {exc.strerror or exc}"
        with contextlib.suppress(OSError):
            self.copy.close()
        self.copy = None

    def flush_if_due(self) -> None:
        if self.pending and time.monotonic() - self.oldest >= self.batch_seconds:
            self.flush()

    def flush(self) -> None:
        for stream, lines in self.pending:
            self.message(s=stream, l=lines)
        self.pending = []
        self.pending_bytes = 0
        if self.copy is not None:
            try:
                self.copy.flush()
            except OSError as exc:
                self.lost_copy(exc)

    def end(
        self,
        *,
        exit_code: int | None = None,
        outputs: dict[str, str] | None = None,
        problem: str | None = None,
        error: str | None = None,
    ) -> None:
        if self.ended:
            return
        self.flush()
        self.ended = True
        self.message(
            end={
                "exit_code": exit_code,
                "outputs": outputs or {},
                "problem": problem,
                "error": error,
            }
        )


class CancelWatcher:
    """Waits on the attempt's cancel event (then its kill event) in the scheduler, in a thread
    of its own: a wait is one request that the scheduler answers when the event is set."""

    WAIT = 1.0  # seconds per wait, so that the thread ends soon after the attempt

    def __init__(self, key: str, client: Any) -> None:
        self.key = key
        self.client = client  # the worker's, got in the task's thread (get_client works there)
        self.cancelled = threading.Event()
        self.killed = threading.Event()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._watch, name=f"{key}-watch", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._done.set()

    def _watch(self) -> None:
        from distributed import Event

        client = self.client
        try:
            for name, flag in (
                (cancel_event(self.key), self.cancelled),
                (kill_event(self.key), self.killed),
            ):
                event = Event(name, client=client)
                while not self._done.is_set():
                    if event.wait(timeout=self.WAIT):
                        flag.set()
                        break
        except Exception:  # the scheduler is gone: the worker ends with it, and so does this
            if not self._done.is_set():
                self.cancelled.set()
