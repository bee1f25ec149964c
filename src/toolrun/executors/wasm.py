"""The WASM executor: an attempt is a WebAssembly module run by wasmtime with WASI, in a
thread of this process, inside a sandbox.

The guest sees its arguments, the env the step gives it and nothing of this machine's, the
workspace (read-write, at its own path and as ``.``) and the folders its manifest declares
(read-only); nothing else of the file system exists for it. Its linear memory is capped
(``memory.grow`` past the cap returns -1). Timeouts and cancels end it through the epoch: each
attempt has an engine of its own whose epoch moves on only to end it, and the guest traps at
its next loop or call. Its stdout and stderr go into pipes (WASI's custom-output callbacks
where a pipe has no path: wasm_output.py), whose bytes reach the engine's thread (or loop)
to be split into lines as a process's are.

wasmtime costs 40-60 ms to import: only an attempt of a WASM tool imports it (through the
local executor, which hands it every launch with a ``sandbox``).
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
from pathlib import Path

from .outputs import read_outputs
from .protocol import Ending, FreezeRefused, Placement, StartError
from .wasm_output import COALESCE, OUTPUT_PIPES, Lines, Outbox, OutputPipes

TYPE_CHECKING = False
if TYPE_CHECKING:
    import asyncio
    from collections.abc import Callable
    from typing import Any

    from .protocol import Launch, Sandbox, Sink

NAME = "wasm"
PAGE = 64 * 1024
LOOK = 0.02  # seconds between looks at a cancelled guest that has not ended yet
FROZEN_REFUSED = "a WASM step cannot be frozen (wasmtime runs it in toolrun's own process)"
# Compiled modules, serialized, by file and its stat: a daemon compiles a tool once (the
# COMPILED_KEPT used last).
COMPILED_KEPT = 16
_compiled: dict[tuple[str, int, int, int], bytes] = {}
_compiled_lock = threading.Lock()


class WasmExecutor:
    """Runs attempts whose launch has a ``sandbox`` as WASM guests, one thread each."""

    name = NAME

    async def start(self, launch: Launch, sink: Sink) -> WasmAttempt:
        import asyncio

        loop = asyncio.get_running_loop()
        attempt = WasmAttempt(launch, sink, loop)
        attempt.guest.begin()
        try:
            await attempt.prepared
        except BaseException:
            attempt.guest.cancel()  # a run cancelled while its module compiled: never starts
            raise
        return attempt

    def start_blocking(self, launch: Launch, sink: Sink) -> BlockingWasmAttempt:
        attempt = BlockingWasmAttempt(launch, sink)
        attempt.guest.begin()
        attempt.guest.wait_prepared()
        return attempt


class Guest:
    """One module's run: prepared and run on a thread of its own, since a wasmtime store
    belongs to the thread that uses it; ``cancel`` may be called from any thread."""

    def __init__(self, launch: Launch, outbox: Outbox, on_done: Callable[[], None]) -> None:
        assert launch.sandbox is not None
        self.launch = launch
        self.sandbox: Sandbox = launch.sandbox
        self.outbox = outbox
        self.on_done = on_done  # called on the guest's thread once prepared or failed, and ended
        self.module_path = Path(launch.argv[0])
        # $TOOLRUN_OUTPUT inside the workspace: the only place the guest can write.
        self.output_file = launch.cwd / f".toolrun-output.{launch.label}.env"
        self.start_error: StartError | None = None
        self.exit_code: int | None = None
        self.failure: str | None = None
        self.memory_note: str | None = None
        self.is_prepared = threading.Event()
        self.is_done = threading.Event()
        self.cancelled = False
        self.left = False  # given up on: see ``leave``
        self._engine: Any = None
        self._pipes: OutputPipes | None = None

    use_pipes = OUTPUT_PIPES  # else WASI's custom-output callbacks (tests try both)

    def begin(self) -> None:
        threading.Thread(target=self._main, name=f"wasm {self.launch.label}", daemon=True).start()

    def wait_prepared(self) -> None:
        self.is_prepared.wait()
        if self.start_error is not None:
            raise self.start_error

    def cancel(self) -> None:
        self.cancelled = True
        self.outbox.unblock()
        engine = self._engine
        if engine is not None:
            engine.increment_epoch()  # the guest traps at its next loop or call

    def leave(self) -> None:
        """Give up on a cancelled guest that has not ended: the epoch cannot reach into a
        host call (a long ``poll_oneoff`` sleep), so it ends only once that call returns, on
        its thread, unwatched. Its attempt ends now."""
        self.left = True
        self.outbox.end()

    def _main(self) -> None:
        try:
            prepared = self._prepare()
        except StartError as exc:
            # Without its traceback: the frames it holds would keep the WASI context, and so
            # the write ends of the output pipes, open.
            self.start_error = exc.with_traceback(None)
            prepared = None
        except Exception as exc:  # wasmtime's own errors, whatever their kind
            self.start_error = StartError(f"{self.module_path.name}: {_first_line(exc)}")
            prepared = None
        self.is_prepared.set()
        self.on_done()
        try:
            if prepared is not None:
                self._run(*prepared)
        except Exception as exc:  # the attempt must end whatever happened: say what did
            self.failure = f"wasm: {_first_line(exc)}"
        finally:
            # Dropped here, not at interpreter exit: wasmtime's runtime threads panic if its
            # objects outlive Python's finalisation.
            del prepared
            self._engine = None
            if self._pipes is not None:
                self._pipes.stop()
            self.outbox.end()
            self.is_done.set()
            self.on_done()

    def _prepare(self) -> tuple[Any, Any, Any] | None:
        try:
            import wasmtime
        except ImportError:
            raise StartError(
                f"{self.module_path.name}: WASM tools need wasmtime (pip install wasmtime)"
            ) from None

        config = wasmtime.Config()
        config.epoch_interruption = True
        engine = wasmtime.Engine(config)
        self._engine = engine
        module = _load_module(wasmtime, engine, self.module_path)
        start = next((e for e in module.exports if e.name == "_start"), None)
        if start is None:
            raise StartError(f"{self.module_path.name}: exports no _start (not a WASI command)")
        wasi = wasmtime.WasiConfig()
        argv = [self.module_path.name, *self.launch.argv[1:]]
        env = {**self.launch.env, "TOOLRUN_OUTPUT": guest_path(self.output_file)}
        for text in (*argv, *env, *env.values()):
            if "\0" in text:
                raise StartError(f"{self.module_path.name}: a NUL byte in an argument or the env")
        wasi.argv = argv
        wasi.env = list(env.items())
        workspace = self.launch.cwd
        wasi.preopen_dir(str(workspace), guest_path(workspace), True)
        wasi.preopen_dir(str(workspace), ".", True)
        for folder in self.sandbox.read_only:
            if not folder.is_dir():
                raise StartError(f"{folder}: no such folder (read_only in the tool's [wasm])")
            wasi.preopen_dir(str(folder), guest_path(folder), False)
        self._outputs(wasi)
        store = wasmtime.Store(engine)
        store.set_wasi(wasi)
        store.set_limits(memory_size=self.sandbox.memory)
        store.set_epoch_deadline(1)
        linker = wasmtime.Linker(engine)
        linker.define_wasi()
        try:
            instance = linker.instantiate(store, module)
        except wasmtime.WasmtimeError as exc:
            raise StartError(self._instantiate_error(wasmtime, module, exc)) from None
        if self.cancelled:
            return None
        return store, instance, wasmtime

    def _outputs(self, wasi: Any) -> None:
        """Where the guest's stdout and stderr go (wasm_output.py says why pipes)."""
        if self.use_pipes:
            self._pipes = OutputPipes(self.outbox, self.launch.label)
            self._pipes.open(wasi)
        else:
            wasi.stdout_custom = lambda data: self.outbox.put("stdout", data)
            wasi.stderr_custom = lambda data: self.outbox.put("stderr", data)

    def _instantiate_error(self, wasmtime: Any, module: Any, exc: Exception) -> str:
        name = self.module_path.name
        text = _first_line(exc)
        if "exceeds memory limits" in text:
            types = [item.type for item in (*module.imports, *module.exports)]
            memories = [t for t in types if isinstance(t, wasmtime.MemoryType)]
            pages = max((t.limits.min for t in memories), default=0)
            return (
                f"{name}: it needs {_size(pages * PAGE)} of memory to start, more than its cap "
                f"of {_size(self.sandbox.memory)} (memory in the tool's [wasm])"
            )
        if "unknown import" in text:
            return f"{name}: {text} (a WASI module may import only wasi_snapshot_preview1)"
        return f"{name}: {text}"

    def _run(self, store: Any, instance: Any, wasmtime: Any) -> None:
        exports = instance.exports(store)
        try:
            exports["_start"](store)
            self.exit_code = 0
        except (wasmtime.Trap, wasmtime.WasmtimeError) as exc:  # ExitTrap is an error
            # wasmtime-py's frame that raised it holds it, and its traceback that frame: a
            # cycle that would keep the store (its memory, the pipes) until Python collects.
            exc.__traceback__ = None
            if isinstance(exc, wasmtime.ExitTrap):
                self.exit_code = exc.code
            elif not isinstance(exc, wasmtime.Trap):
                self.failure = f"wasm error: {_cause(exc)}"
            elif self.cancelled and exc.trap_code == wasmtime.TrapCode.INTERRUPT:
                self.failure = "ended by toolrun"
            else:
                self.failure = f"wasm trap: {_cause(exc)}"
        memory = exports.get("memory")
        if memory is not None and (self.failure or self.exit_code):
            size = memory.data_len(store)
            if size + PAGE > self.sandbox.memory:
                self.memory_note = (
                    f"its memory reached its cap of {_size(self.sandbox.memory)}, where "
                    "memory.grow fails (memory in the tool's [wasm] raises it)"
                )

    def ending(self) -> Ending:
        outputs, problem = read_outputs(self.output_file)
        if self.left and not self.is_done.is_set():
            why = "cancelled inside a host call (a sleep): left to end once that call returns"
            return Ending(None, outputs, problem, failure=why)
        with contextlib.suppress(OSError):
            os.unlink(self.output_file)  # the workspace holds what the step made, not this
        failure = self.failure
        if self.memory_note is not None:
            if failure is not None:
                failure = f"{failure}: {self.memory_note}"
            else:
                problem = self.memory_note if problem is None else f"{problem}; {self.memory_note}"
        code = None if failure is not None else self.exit_code
        return Ending(code, outputs, problem, failure=failure)


class WasmAttempt:
    """A guest followed in the running event loop."""

    def __init__(self, launch: Launch, sink: Sink, loop: asyncio.AbstractEventLoop) -> None:
        self.placement = Placement(NAME)
        self.loop = loop
        self.lines = Lines(launch, sink)
        self.prepared: asyncio.Future[None] = loop.create_future()
        self.done: asyncio.Future[None] = loop.create_future()
        self.outbox = Outbox(wake=lambda: self._soon(self._deliver_soon))
        self.guest = Guest(launch, self.outbox, lambda: self._soon(self._progress))

    def _soon(self, callback: Callable[[], None]) -> None:
        """On the loop's thread, from wasmtime's: a loop closed meanwhile has no one to tell."""
        with contextlib.suppress(RuntimeError):
            self.loop.call_soon_threadsafe(callback)

    def _progress(self) -> None:
        guest = self.guest
        if guest.is_prepared.is_set() and not self.prepared.done():
            if guest.start_error is not None:
                self.prepared.set_exception(guest.start_error)
            else:
                self.prepared.set_result(None)
        if guest.is_done.is_set() and not self.done.done():
            self.done.set_result(None)

    def _deliver_soon(self) -> None:
        self.loop.call_later(COALESCE, self._deliver)

    def _deliver(self) -> None:
        self.lines.deliver(self.outbox.take())

    async def ended(self) -> Ending:
        await self.done
        self._deliver()
        self.lines.finish()
        return self.guest.ending()

    async def cancel(self, *, grace: float, forced: Callable[[], bool] | None = None) -> None:
        """At once: a guest has no polite end to be asked for, and holds nothing to tidy
        (but see ``Guest.leave``)."""
        import asyncio

        self.guest.cancel()
        deadline = time.monotonic() + grace
        while not self.guest.is_done.is_set():
            if time.monotonic() >= deadline or (forced is not None and forced()):
                self.guest.leave()
                if not self.done.done():
                    self.done.set_result(None)
                return
            await asyncio.sleep(LOOK)

    def freeze(self, frozen: bool) -> None:
        raise FreezeRefused(FROZEN_REFUSED)


class BlockingWasmAttempt:
    """A guest followed by calls from the caller's thread."""

    def __init__(self, launch: Launch, sink: Sink) -> None:
        self.placement = Placement(NAME)
        self.launch = launch
        self.lines = Lines(launch, sink)
        self.outbox = Outbox()
        self.guest = Guest(launch, self.outbox, lambda: None)
        self._finished = False

    def pump(self, timeout: float) -> bool:
        if self._finished:
            return True
        if self.launch.timeout is not None:
            # Awake at the step's deadline: the caller ends the attempt then, not a pump later.
            left = self.launch.started + self.launch.timeout - time.monotonic()
            timeout = min(timeout, max(left, 0.001))
        self.lines.deliver(self.outbox.take(timeout))
        if self.exited():
            self.lines.deliver(self.outbox.take())
            self.lines.finish()
            self._finished = True
        return self._finished

    def exited(self) -> bool:
        return self.guest.is_done.is_set() or self.guest.left

    def ending(self) -> Ending:
        return self.guest.ending()

    def cancel(self, *, grace: float, forced: Callable[[], bool] | None = None) -> None:
        self.guest.cancel()
        deadline = time.monotonic() + grace
        while not self.guest.is_done.wait(LOOK):
            if time.monotonic() >= deadline or (forced is not None and forced()):
                self.guest.leave()
                return

    def freeze(self, frozen: bool) -> None:
        raise FreezeRefused(FROZEN_REFUSED)


def guest_path(path: Path) -> str:
    """Where the guest finds a host folder: at the same path (posix-style on Windows), so
    that paths in its arguments and env mean the same inside and out."""
    return path.as_posix() if sys.platform == "win32" else str(path)


def _load_module(wasmtime: Any, engine: Any, path: Path) -> Any:
    try:
        stat = path.stat()
        key = (str(path), stat.st_ino, stat.st_size, stat.st_mtime_ns)
        with _compiled_lock:
            compiled = _compiled.pop(key, None)
            if compiled is not None:
                _compiled[key] = compiled  # the last used goes to the end, the last dropped
        if compiled is not None:
            return wasmtime.Module.deserialize(engine, compiled)
        module = wasmtime.Module.from_file(engine, str(path))
    except FileNotFoundError:
        raise StartError(f"{path}: no such module") from None
    except OSError as exc:
        raise StartError(f"{path}: {exc.strerror or exc}") from None
    except wasmtime.WasmtimeError as exc:
        raise StartError(f"{path.name}: not a WebAssembly module ({_first_line(exc)})") from None
    with _compiled_lock:
        _compiled[key] = bytes(module.serialize())
        while len(_compiled) > COMPILED_KEPT:
            del _compiled[next(iter(_compiled))]
    return module


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def _cause(exc: BaseException) -> str:
    """The reason wasmtime gives, without its backtrace: the last line of its message."""
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    text = lines[-1] if lines else type(exc).__name__
    return text.removeprefix("wasm trap: ")


def _size(size: int) -> str:
    for unit, scale in (("GB", 1024**3), ("MB", 1024**2), ("KB", 1024)):
        if size >= scale:
            return f"{size / scale:g} {unit}"
    return f"{size} bytes"
