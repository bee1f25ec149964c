"""The cluster executor: the daemon's attempts run on Dask workers.

An attempt is one Dask task (``worker_task.run_attempt``) submitted with worker restrictions
(the workers whose labels meet the step's selector, ``allow_other_workers=False``) and one
``slot`` resource, so that Dask's own queueing and work stealing share the load among the
workers that qualify. Its output and its end come back on the one event topic (spec.py),
numbered, so a message lost or repeated is seen; a worker lost while it runs ends the
attempt ``worker_lost`` (the scheduler's allowed-failures is 0: Dask never runs a tool
again by itself; the step's retries decide).

A run's steps stay on the worker its first attempt landed on ("home"), and so does its
workspace; a step with a ``runs_on`` of its own goes wherever that says, and the workspace
goes with it: packed at home (a task there), handed to the step's task as an argument so that
Dask moves it worker to worker (and, when home qualifies, prefers to run the step where the
data is), and what the step made unpacked at home by a task that depends on the step's. The
attempt ends when that has happened, so the next step finds the results. When the run ends,
its home's workspace is fetched back to the daemon (workspaces.py; capped).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..executors.protocol import Ending, Placement
from ..records import record
from .spec import SLOT, TOPIC, AttemptSpec, attempt_key, cancel_event, kill_event, task_priority
from .workers import WorkerBook, WorkerInfo

if TYPE_CHECKING:
    from collections.abc import Callable

    from distributed import Client, Future

    from ..executors.protocol import Launch, Sink, StepRef
    from ..selectors import Selector

NAME = "cluster"
MACHINE_KEYS = ("os", "arch")  # labels every worker has, set by toolrun (machine_labels)
KNOWN_OS = ("linux", "windows", "macos", "freebsd")
STRAGGLER_SECONDS = 5.0  # how long the last messages may trail the task's end
FORCE_POLL_SECONDS = 0.2
COLLECT_SECONDS = 120.0  # how long the daemon waits for a run's final workspace
CARRY_PRIORITY = 1_000_000  # a pack or unpack goes before any step that waits
SCHEDULER_LOST = "scheduler-connection-lost"  # Dask's reason, cancelling a client's futures


@record(frozen=True)
class ClusterSettings:
    wait_for_worker: float = 600.0  # how long a step waits for a worker its selector admits
    registry: str | None = None  # the daemon's /registry/ tree, as workers reach it
    registry_token: str | None = None
    batch_seconds: float = 0.05
    workspace_cap: int = 512 * 1024**2  # config key cluster_workspace_cap


class NoWorker(Exception):
    """No worker the step may run on joined in time."""


class ClusterExecutor:
    name = NAME
    wants_step = True  # launches carry a StepRef: the worker needs names, not paths

    def __init__(self, client: Client, book: WorkerBook, settings: ClusterSettings) -> None:
        self.client = client
        self.scheduler = str(client.scheduler.address) if client.scheduler else "?"
        self.book = book
        self.settings = settings
        self.attempts: dict[str, ClusterAttempt] = {}
        self.homes: dict[str, asyncio.Future[str]] = {}  # run id -> its home worker's address
        self.lost_workers = 0
        self.background: set[asyncio.Future[None]] = set()  # held, or the loop may drop them
        client.subscribe_topic(TOPIC, self._on_message)

    async def start(self, launch: Launch, sink: Sink) -> ClusterAttempt:
        assert launch.step is not None, "the engine gives a cluster executor step references"
        attempt = ClusterAttempt(self, launch, launch.step, sink)
        self.attempts[attempt.key] = attempt
        attempt.begin()
        return attempt

    def running_on(self) -> dict[str, int]:
        """Steps running now, by worker address."""
        counts: dict[str, int] = {}
        for attempt in self.attempts.values():
            if attempt.address is not None and not attempt.finished.done():
                counts[attempt.address] = counts.get(attempt.address, 0) + 1
        return counts

    def never(self, selector: Selector) -> str | None:
        """Why no worker could ever meet ``selector``, when that is certain (else None: the
        step waits for one). Every toolrun worker has the labels os= and arch=, which it
        cannot choose: one of them required absent, or an os no toolrun runs on, never is."""
        for requirement in selector.requirements:
            if requirement.key not in MACHINE_KEYS:
                continue
            if requirement.operator == "not_exists":
                return (
                    f"runs_on {requirement}: every worker has the label {requirement.key}= "
                    "(toolrun sets it)"
                )
            unknown_os = not set(requirement.values) & set(KNOWN_OS)
            if requirement.key == "os" and requirement.operator in ("eq", "in") and unknown_os:
                return (
                    f"runs_on {requirement}: no worker can have it: toolrun workers say "
                    f"os={', os='.join(KNOWN_OS)}"
                )
        return None

    def later(self, work: Any) -> None:
        task = asyncio.ensure_future(work)
        self.background.add(task)
        task.add_done_callback(self.background.discard)

    def lost(self) -> str | None:
        """Why no step can go anywhere: the daemon's client gave up on a scheduler elsewhere
        (Dask tries to reconnect first, for its connect timeout)."""
        if self.client.status in ("closing", "closed"):
            return (
                f"the cluster's scheduler at {self.scheduler} was lost and did not come back; "
                "restart the daemon once it runs again"
            )
        return None

    def home_of(self, run_id: str) -> str | None:
        """The address of the worker that holds the run's workspace, once one does."""
        home = self.homes.get(run_id)
        if home is None or not home.done() or home.cancelled():
            return None
        return home.result()

    async def collect(self, run_id: str, into: Path) -> str | None:
        """Fetch the run's final workspace from its home into the daemon's run folder; a
        warning to record when it cannot be (the worker keeps its copy either way)."""
        from .worker_task import pack_workspace
        from .workspaces import CarryFailed, WorkspaceError, unpack

        address = self.home_of(run_id)
        if address is None:
            return None
        where = self.book.name_of(address)
        if self.client.status != "running":
            return f"the final workspace stays on worker {where}: the scheduler is unreachable"
        if not any(w.address == address for w in await self.book.workers()):
            # A task for a worker that is gone would wait for it for ever.
            return f"the final workspace was lost with worker {where}"
        future = self.on(address, f"toolrun-{run_id}-collect", pack_workspace, run_id)
        try:
            packed = await asyncio.wait_for(future, COLLECT_SECONDS)
            await asyncio.to_thread(unpack, packed, into, self.settings.workspace_cap)
        except (CarryFailed, WorkspaceError) as exc:
            return f"the final workspace stays on worker {where}: {exc}"
        except Exception as exc:  # the worker lost, a timeout: Dask says it many ways
            return (
                f"the final workspace could not be fetched from worker {where} "
                f"({exc.__class__.__name__}); it stays there"
            )
        finally:
            future.release()
        return None

    def run_finished(self, run_id: str) -> None:
        home = self.homes.pop(run_id, None)
        if home is not None and not home.done():
            home.cancel()

    def _on_message(self, event: tuple[float, Any]) -> None:
        _, message = event
        if not isinstance(message, dict):
            return
        attempt = self.attempts.get(str(message.get("k")))
        if attempt is not None:
            attempt.receive(message)

    async def candidates(self, selector: Selector) -> tuple[list[WorkerInfo], list[WorkerInfo]]:
        """The workers the selector admits, and all the workers there are."""
        workers = await self.book.workers()
        return [w for w in workers if selector.matches(w.labels)], workers

    async def place(self, ref: StepRef, sink: Sink) -> list[str]:
        """The addresses the attempt may go to: its run's home when it has one and the
        selector admits it, else every worker the selector admits, waiting for one."""
        home = self.homes.get(ref.run_id)
        if home is not None:
            # Wait for the run's first attempt to start somewhere: that is where the workspace
            # is, and where this step goes (or the workspace is carried from).
            try:
                address = await asyncio.shield(home)
            except asyncio.CancelledError:
                address = None
            if address is not None:
                admitted, workers = await self.candidates(ref.selector)
                if not any(w.address == address for w in workers):
                    # Home was lost, and its workspace with it: this attempt starts afresh,
                    # and where it starts is the run's home now.
                    self.homes.pop(ref.run_id, None)
                elif not ref.own_selector and any(w.address == address for w in admitted):
                    return [address]
        deadline = time.monotonic() + self.settings.wait_for_worker
        said = False
        while True:
            lost = self.lost()
            if lost is not None:
                raise NoWorker(lost)
            admitted, workers = await self.candidates(ref.selector)
            if admitted:
                if ref.run_id not in self.homes:  # the first attempt to start makes it home
                    self.homes[ref.run_id] = asyncio.get_running_loop().create_future()
                return [w.address for w in admitted]
            reason = waiting_reason(ref.selector, workers)
            if time.monotonic() >= deadline:
                raise NoWorker(
                    f"no worker for step {ref.step_id!r} joined within "
                    f"{self.settings.wait_for_worker:g}s: {reason}"
                )
            if not said and sink.on_note is not None:
                sink.on_note(f"waiting for a worker: {reason}")
                said = True
            await self.book.changed(timeout=min(1.0, max(0.0, deadline - time.monotonic())))

    def submit(
        self, ref: StepRef, key: str, addresses: list[str], carried: Future | None = None
    ) -> Future:
        from .worker_task import run_attempt

        spec = AttemptSpec(
            key=key,
            run_id=ref.run_id,
            step_id=ref.step_id,
            attempt=ref.attempt,
            tool=ref.tool,
            version=ref.version,
            sha256=ref.sha256,
            args=ref.args,
            env=ref.env,
            registry=self.settings.registry,
            registry_token=self.settings.registry_token,
            batch_seconds=self.settings.batch_seconds,
            workspace_cap=self.settings.workspace_cap,
        )
        return self.client.submit(
            run_attempt,
            spec,
            carried,
            key=key,
            workers=addresses,
            allow_other_workers=False,
            resources={SLOT: 1},
            priority=task_priority(ref.priority, ref.queued_at),
            pure=False,
            retries=0,
        )

    def carry(self, ref: StepRef, key: str, home: str) -> Future:
        """Pack the run's workspace at home, for the step's task to take."""
        from .worker_task import pack_workspace

        return self.on(home, f"{key}-carry", pack_workspace, ref.run_id)

    def bring_back(self, ref: StepRef, key: str, home: str, step: Future) -> Future:
        """Unpack at home what the step made elsewhere (nothing when it ran at home)."""
        from .worker_task import unpack_workspace

        return self.on(home, f"{key}-back", unpack_workspace, ref.run_id, step)

    def on(self, address: str, key: str, task: Callable[..., Any], *args: Any) -> Future:
        """A workspace task on one worker (``args``, then the cap), ahead of waiting steps;
        it takes no slot."""
        return self.client.submit(
            task,
            *args,
            self.settings.workspace_cap,
            key=key,
            workers=[address],
            allow_other_workers=False,
            priority=CARRY_PRIORITY,
            pure=False,
            retries=0,
        )

    def homed(self, ref: StepRef, address: str) -> None:
        home = self.homes.get(ref.run_id)
        if home is not None and not home.done():
            home.set_result(address)


def waiting_reason(selector: Selector, workers: list[WorkerInfo]) -> str:
    """Why no worker will do, in a line: what the selector asks, and what the workers are."""
    if not workers:
        return f"runs_on {selector}: no worker has joined the cluster"
    shown = "; ".join(
        f"{w.name} ({', '.join(map(str, selector.unmet(w.labels)))} unmet)" for w in workers[:5]
    )
    more = f" and {len(workers) - 5} more" if len(workers) > 5 else ""
    return f"runs_on {selector}: no worker meets it ({shown}{more})"


class ClusterAttempt:
    """One attempt on a worker, followed from the daemon's event loop."""

    def __init__(self, executor: ClusterExecutor, launch: Launch, ref: StepRef, sink: Sink):
        self.executor = executor
        self.launch = launch
        self.ref = ref
        self.sink = sink
        self.key = attempt_key(ref.run_id, ref.step_id, ref.attempt)
        self.placement = Placement(NAME)
        self.address: str | None = None
        self.worker: str | None = None
        self.future: Future | None = None
        self.carried: Future | None = None  # the workspace packed at home, for this step
        self.back: Future | None = None  # its results unpacked at home
        self.home: str | None = None
        self.reported: asyncio.Future[Ending] = asyncio.get_running_loop().create_future()
        self.expected = 0  # the number of the next message
        self.early: dict[int, dict[str, Any]] = {}  # messages that came before their turn
        self.finished: asyncio.Future[Ending] = asyncio.get_running_loop().create_future()
        self.cancelled = False
        self.events_set: list[str] = []
        self._task: asyncio.Task[None] | None = None

    def begin(self) -> None:
        self._task = asyncio.ensure_future(self._follow())

    async def _follow(self) -> None:
        try:
            addresses = await self.executor.place(self.ref, self.sink)
        except NoWorker as exc:
            self._end(Ending(None, failure=f"cannot start: {exc}"))
            return
        if self.cancelled:
            self._end(Ending(None, failure="cancelled before a worker took it"))
            return
        home = self.executor.home_of(self.ref.run_id)
        if home is not None and addresses != [home]:
            self.home = home
            self.carried = self.executor.carry(self.ref, self.key, home)
        self.future = self.executor.submit(self.ref, self.key, addresses, self.carried)
        if self.home is not None:
            self.back = self.executor.bring_back(self.ref, self.key, self.home, self.future)
        try:
            await (self.back or self.future)
        except asyncio.CancelledError:
            if not self.finished.done():
                self._end(Ending(None, failure="cancelled before a worker took it"))
            return
        except Exception as exc:
            self._task_failed(exc)
            return
        finally:
            self._release()
        # The task returned: its last messages may still be on their way.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(self.reported), STRAGGLER_SECONDS)
        if self.reported.done():
            self._end(self.reported.result())
        if not self.finished.done():
            self._end(
                Ending(
                    None,
                    failure=f"the worker {self.worker or '?'} finished the attempt but its "
                    f"last messages did not arrive (after message {self.expected - 1})",
                )
            )

    def _release(self) -> None:
        """The packed workspaces leave the workers' memory once the attempt is over."""
        for future in (self.back, self.future, self.carried):
            if future is not None:
                with contextlib.suppress(Exception):
                    future.release()

    def _task_failed(self, exc: BaseException) -> None:
        if self.finished.done():
            return
        from distributed.scheduler import KilledWorker

        from .workspaces import CarryFailed

        if isinstance(exc, CarryFailed):
            started = self.reported.done() or self.worker is not None
            what = "its results could not be carried home" if started else "cannot start"
            self._end(Ending(None, failure=f"{what}: the workspace {exc}"))
        elif isinstance(exc, KilledWorker):
            self.executor.lost_workers += 1
            where = self.worker or "its worker"
            self._end(Ending(None, failure=f"worker {where} was lost mid-step", lost=True))
        elif getattr(exc, "reason", None) == SCHEDULER_LOST:
            # What the attempt did is unknown, as for a lost worker: its retries decide, and
            # the worker's own copy of the log keeps what it printed.
            where = f" on worker {self.worker}" if self.worker else ""
            self._end(
                Ending(
                    None,
                    failure=f"the scheduler at {self.executor.scheduler} was lost mid-step{where}",
                    lost=True,
                )
            )
        else:
            self._end(Ending(None, failure=f"the worker failed: {exc.__class__.__name__}: {exc}"))

    def receive(self, message: dict[str, Any]) -> None:
        number = message.get("n")
        if not isinstance(number, int) or number < self.expected or self.finished.done():
            return  # a repeat, or after the end
        self.early[number] = message
        while self.expected in self.early:
            self._handle(self.early.pop(self.expected))
            self.expected += 1

    def _handle(self, message: dict[str, Any]) -> None:
        if "l" in message:
            self.sink.on_lines(str(message.get("s")), list(message["l"]))
        elif "start" in message:
            start = message["start"]
            self.worker = str(start.get("worker"))
            address = start.get("address")
            self.address = address if isinstance(address, str) else None
            self.placement = Placement(NAME, host=self.worker)
            if self.address is not None:
                self.executor.homed(self.ref, self.address)
            if self.sink.on_placed is not None:
                self.sink.on_placed(self.placement)
            if self.sink.on_note is not None:
                self.sink.on_note(f"on worker {self.worker}")
        elif "end" in message:
            end = message["end"]
            failure = end.get("error")
            code = end.get("exit_code")
            ending = Ending(
                code if isinstance(code, int) else None,
                {str(k): str(v) for k, v in (end.get("outputs") or {}).items()},
                end.get("problem"),
                failure=failure,
            )
            if not self.reported.done():
                self.reported.set_result(ending)
            if self.back is None:
                self._end(ending)  # else once its results are home (_follow)

    def _end(self, ending: Ending) -> None:
        if not self.finished.done():
            self.finished.set_result(ending)
        self.executor.attempts.pop(self.key, None)
        home = self.executor.homes.get(self.ref.run_id)
        if home is not None and not home.done() and self.worker is None:
            # It never started anywhere: the run has no home yet, and nothing waits for one.
            home.cancel()
            del self.executor.homes[self.ref.run_id]
        if self.events_set:
            self.executor.later(self._clear_events())

    async def _clear_events(self) -> None:
        from distributed import Event

        for name in self.events_set:
            with contextlib.suppress(Exception):
                await Event(name, client=self.executor.client).clear()

    async def ended(self) -> Ending:
        return await asyncio.shield(self.finished)

    async def cancel(self, *, grace: float, forced: Callable[[], bool] | None = None) -> None:
        """Set the attempt's cancel event (and, with no grace, its kill event); the worker
        ends the tree. Before a worker took it, the task is simply withdrawn."""
        if self.finished.done():
            return
        self.cancelled = True
        if self.future is None:
            return  # still being placed: _follow sees `cancelled`
        if self.worker is None:
            await self.future.cancel()
            if self.worker is None:
                self._end(Ending(None, failure="cancelled before a worker took it"))
                return
        await self._set(cancel_event(self.key))
        if grace <= 0:
            await self._set(kill_event(self.key))
        elif forced is not None:
            self.executor.later(self._force_when(forced))

    async def _force_when(self, forced: Callable[[], bool]) -> None:
        while not self.finished.done():
            if forced():
                await self._set(kill_event(self.key))
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self.finished), FORCE_POLL_SECONDS)

    async def _set(self, name: str) -> None:
        from distributed import Event

        if name not in self.events_set:
            self.events_set.append(name)
            await Event(name, client=self.executor.client).set()
