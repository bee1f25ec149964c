"""The seam between the engine and wherever an attempt runs.

The engine hands an executor a ``Launch``: what to run, where, with what, for how long, and
where the tool writes its outputs. The executor starts it and gives back an attempt: its
output arrives as it is written (a ``Sink``'s calls, on the engine's thread or loop), and it
ends with an ``Ending`` (the exit code, the outputs, where it ran). Ending an attempt early is
a call on it (``cancel``); the reasons (a timeout, a cancel) are the engine's. Everything
about processes (ids, groups, cgroups, Job Objects, what a dead toolrun left running) stays
behind an executor: the local one here, a Dask worker or a WASM runtime next.

Two forms: ``Executor`` for an event loop (every executor has it), and ``BlockingExecutor``
for a caller without one (``toolrun exec``: importing asyncio alone is a third of its start-up
budget); the local executor has both.
"""

from __future__ import annotations

from pathlib import Path

from ..records import field, record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Protocol

    from ..selectors import Selector
else:
    Protocol = object  # `typing` costs milliseconds at start-up: see threaded_driver.py


class StartError(Exception):
    """An attempt could not start (no such program, not executable, arguments too long)."""


class FreezeRefused(Exception):
    """An attempt's processes cannot be frozen here (``pause --now``); the message says why.

    An attempt that can be frozen has ``freeze(frozen: bool)``: its whole tree stops (a
    cgroup's freezer, or SIGSTOP) and goes on again. One without it cannot be frozen."""


@record(frozen=True)
class StepRef:
    """An attempt as an executor elsewhere needs it (a Dask worker): the tool by name, version
    and digest instead of a path here, the step's own environment without what this process
    inherited, and where it may run. Made only for executors that ask (``wants_step``)."""

    run_id: str
    step_id: str
    attempt: int
    tool: str
    version: str
    sha256: str
    args: list[str]
    env: dict[str, str]  # the toolchain's, the step's and the caller's variables
    selector: Selector
    own_selector: bool  # the step says runs_on itself (else the run's or the toolchain's)
    priority: int = 0  # the run's: higher starts first
    queued_at: float = 0.0  # when the run was recorded: among equal priorities, older first


@record(frozen=True)
class Sandbox:
    """A WASM attempt's bounds: ``argv[0]`` is its module, run in a WASI sandbox that sees
    the launch's ``cwd`` (read-write) and ``read_only`` (read-only), ``env`` and no more, in
    at most ``memory`` bytes of linear memory (executors/wasm.py)."""

    memory: int
    read_only: tuple[Path, ...] = ()


@record(frozen=True)
class Launch:
    """An attempt, ready to start."""

    argv: list[str]
    env: dict[str, str]
    cwd: Path  # the working folder
    encoding: str  # the tool's output is decoded with it
    output_file: Path  # the tool writes KEY=VALUE lines here ($TOOLRUN_OUTPUT)
    label: str  # names the attempt where the system shows it (a cgroup's folder)
    timeout: float | None = None  # the step's: the engine ends the attempt when it passes
    started: float = 0.0  # time.monotonic() when the launch was made
    step: StepRef | None = None  # for executors that run it elsewhere
    sandbox: Sandbox | None = None  # a WASM tool's: run in wasmtime, not as a process


@record(frozen=True)
class Placement:
    """Where an attempt runs: enough for another toolrun to end it should this one die."""

    executor: str  # "local", "cluster"
    pid: int | None = None
    pid_started: float | None = None  # tells the process from a later one with its pid
    container: str | None = None  # the cgroup (or other container) holding its whole tree
    host: str | None = None  # the cluster worker's name (its pid is the worker's, not ours)


@record(frozen=True)
class Ending:
    """How an attempt ended: the exit code (negative: the signal that ended it), the outputs
    it wrote, and what was wrong with its outputs file if something was."""

    exit_code: int | None
    outputs: dict[str, str] = field(default_factory=dict)
    problem: str | None = None
    failure: str | None = None  # it did not run to an exit, and why (a worker's refusal)
    lost: bool = False  # the worker running it was lost: ``failure`` says which


@record(frozen=True)
class Sink:
    """Where an attempt's output goes as it arrives: its lines, decoded, per stream
    ("stdout", "stderr"); and, for who wants them (``toolrun exec`` into a pipe), the bytes."""

    on_lines: Callable[[str, list[str]], None]
    on_raw: Callable[[str, bytes], None] | None = None
    # What an executor elsewhere says of an attempt: why it waits, and where it landed.
    on_note: Callable[[str], None] | None = None
    on_placed: Callable[[Placement], None] | None = None


class Attempt(Protocol):
    """A started attempt, followed in the running event loop."""

    placement: Placement

    async def ended(self) -> Ending:
        """Wait for the end: the program exited and its output is read."""
        ...

    async def cancel(self, *, grace: float, forced: Callable[[], bool] | None = None) -> None:
        """End it: politely, then (after ``grace`` seconds, or once ``forced()``) by force."""
        ...


class Executor(Protocol):
    name: str

    async def start(self, launch: Launch, sink: Sink) -> Attempt:
        """Start ``launch``; raises ``StartError`` when it cannot start."""
        ...


class BlockingAttempt(Protocol):
    """A started attempt, followed by calls from the caller's thread."""

    placement: Placement

    def pump(self, timeout: float) -> bool:
        """Deliver what arrived, waiting up to ``timeout`` seconds; True once it has ended."""
        ...

    def exited(self) -> bool:
        """The program has exited (its output may still be coming)."""
        ...

    def ending(self) -> Ending:
        """After ``pump`` said so: how it ended."""
        ...

    def cancel(self, *, grace: float, forced: Callable[[], bool] | None = None) -> None: ...


class BlockingExecutor(Protocol):
    name: str

    def start_blocking(self, launch: Launch, sink: Sink) -> BlockingAttempt: ...


def exit_description(returncode: int) -> str:
    """``exit 3``, or ``killed by SIGKILL`` for a negative code (POSIX: the signal's number)."""
    if returncode < 0:
        import signal

        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        return f"killed by {name}"
    return f"exit {returncode}"
