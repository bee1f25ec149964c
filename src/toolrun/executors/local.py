"""The local executor: an attempt is a process on this machine, in a container of its own.

The engine sees only the protocol (``protocol.py``); the processes, their containers and
their pipes are ``processes.py``'s and ``containment.py``'s. A launch with a ``sandbox`` (a
WASM tool's) goes to the WASM executor (``wasm.py``), imported then and only then.
"""

from __future__ import annotations

from .outputs import read_outputs
from .processes import StepProcess, ThreadedStepProcess, end_left_processes, process_start_time
from .protocol import Ending, Placement

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

    from .protocol import Launch, Sink
    from .wasm import BlockingWasmAttempt, WasmAttempt, WasmExecutor

NAME = "local"


class LocalExecutor:
    """Runs attempts as processes here. ``orphan_grace``: how long what a program left behind
    may hold its output open after it exited; ``kill_grace``: how long a polite end waits."""

    name = NAME

    def __init__(self, *, orphan_grace: float = 1.0, kill_grace: float = 5.0) -> None:
        self.orphan_grace = orphan_grace
        self.kill_grace = kill_grace
        self._wasm: WasmExecutor | None = None

    @property
    def wasm(self) -> WasmExecutor:
        if self._wasm is None:
            from .wasm import WasmExecutor

            self._wasm = WasmExecutor()
        return self._wasm

    async def start(self, launch: Launch, sink: Sink) -> LocalAttempt | WasmAttempt:
        if launch.sandbox is not None:
            return await self.wasm.start(launch, sink)
        process = StepProcess(
            launch.argv,
            cwd=launch.cwd,
            env=launch.env,
            encoding=launch.encoding,
            on_lines=sink.on_lines,
            on_raw=sink.on_raw,
            label=launch.label,
        )
        await process.start()
        return LocalAttempt(self, launch, process)

    def start_blocking(
        self, launch: Launch, sink: Sink
    ) -> BlockingLocalAttempt | BlockingWasmAttempt:
        if launch.sandbox is not None:
            return self.wasm.start_blocking(launch, sink)
        process = ThreadedStepProcess(
            launch.argv,
            cwd=launch.cwd,
            env=launch.env,
            encoding=launch.encoding,
            on_lines=sink.on_lines,
            on_raw=sink.on_raw,
            label=launch.label,
            orphan_grace=self.orphan_grace,
            kill_grace=self.kill_grace,
        )
        process.start()
        return BlockingLocalAttempt(launch, process)

    @staticmethod
    def end_left(placements: list[Placement]) -> None:
        """End what attempts of a toolrun that died left running here (their whole trees)."""
        end_left_processes(
            [(p.pid, p.pid_started or 0.0, p.container) for p in placements if p.pid is not None]
        )


def _placement(pid: int | None, container: str | None) -> Placement:
    started = process_start_time(pid) if pid is not None else None
    return Placement(NAME, pid, started, container)


class LocalAttempt:
    def __init__(self, executor: LocalExecutor, launch: Launch, process: StepProcess) -> None:
        self.executor = executor
        self.launch = launch
        self.process = process
        box = process.box
        self.placement = _placement(process.pid, box.ref if box is not None else None)

    async def ended(self) -> Ending:
        code = await self.process.run(
            orphan_grace=self.executor.orphan_grace, kill_grace=self.executor.kill_grace
        )
        outputs, problem = read_outputs(self.launch.output_file)
        return Ending(code, outputs, problem)

    async def cancel(self, *, grace: float, forced: Callable[[], bool] | None = None) -> None:
        await self.process.terminate(grace=grace, forced=forced)

    def freeze(self, frozen: bool) -> None:
        """Stop (or go on with) every process of the attempt: ``pause --now``."""
        if self.process.box is not None:
            self.process.box.freeze(frozen)


class BlockingLocalAttempt:
    def __init__(self, launch: Launch, process: ThreadedStepProcess) -> None:
        self.launch = launch
        self.process = process
        box = process.box
        self.placement = _placement(process.pid, box.ref if box is not None else None)

    def pump(self, timeout: float) -> bool:
        self.process.pump(timeout)
        return self.process.done

    def exited(self) -> bool:
        return self.process.returncode is not None

    def ending(self) -> Ending:
        code = self.process.finish()
        outputs, problem = read_outputs(self.launch.output_file)
        return Ending(code, outputs, problem)

    def cancel(self, *, grace: float, forced: Callable[[], bool] | None = None) -> None:
        self.process.terminate(grace=grace, forced=forced)

    def freeze(self, frozen: bool) -> None:
        if self.process.box is not None:
            self.process.box.freeze(frozen)
