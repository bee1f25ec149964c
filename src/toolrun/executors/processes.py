"""Starting a step's process, reading its output as lines, and ending its whole tree.

Every attempt starts inside a container of its own (``containment.py``: a cgroup on Linux
where the machine allows one, a Job Object on Windows, else its own session and process
group), which is how its whole tree is ended on a cancel or a timeout, and how what it left
running is ended when it exits. The Windows branches stay small; the logic they call
(``LineSplitter``, ``exit_description``) is plain and tested everywhere.

It stays whole: ``StepProcess`` (an event loop's) and ``ThreadedStepProcess`` (a blocking
caller's) are one step process in two forms, sharing its start options, start errors, line
splitting and callbacks; apart, a change to one would miss the other.
"""

from __future__ import annotations

import codecs
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from .protocol import StartError, exit_description

__all__ = ["MAX_LINE", "LineSplitter", "StartError", "StepProcess", "ThreadedStepProcess"]
__all__ += ["exit_description", "process_start_time"]

# `typing` costs milliseconds at start-up; annotations alone never need it at run time.
TYPE_CHECKING = False
if TYPE_CHECKING:
    import asyncio
    import queue
    import selectors
    from typing import IO, Any

    from .containment import Box

IS_WINDOWS = sys.platform.startswith("win")
READ_SIZE = 1024 * 1024
# A bigger pipe (Linux) lets a chatty tool run ahead while toolrun handles the last batch, and
# makes each batch of lines larger: fewer events, fewer wake-ups.
PIPE_SIZE = 1024 * 1024
MAX_LINE = 64 * 1024  # longer lines are cut into pieces of this many characters
QUEUED_READS = 8  # reads of up to READ_SIZE waiting for the thread that handles them


class LineSplitter:
    """Bytes in, complete decoded lines out; never fails on bad bytes, never grows unbounded."""

    def __init__(self, encoding: str) -> None:
        self._decoder = codecs.getincrementaldecoder(encoding)(errors="replace")
        self._pending = ""

    def feed(self, data: bytes) -> list[str]:
        text = self._pending + self._decoder.decode(data)
        lines = text.split("\n")
        self._pending = lines.pop()
        if len(self._pending) > MAX_LINE:
            cut = len(self._pending) - len(self._pending) % MAX_LINE
            lines.extend(self._pending[i : i + MAX_LINE] for i in range(0, cut, MAX_LINE))
            self._pending = self._pending[cut:]
        # Whole-chunk checks first: this runs for every line a tool prints.
        if lines and max(map(len, lines)) > MAX_LINE:
            lines = [piece for line in lines for piece in _cut(line)]
        if "\r" in text:
            lines = [line[:-1] if line.endswith("\r") else line for line in lines]
        return lines

    def finish(self) -> list[str]:
        rest = self._pending + self._decoder.decode(b"", final=True)
        self._pending = ""
        return [line.rstrip("\r") for line in _cut(rest)] if rest else []


def _cut(line: str) -> list[str]:
    if len(line) <= MAX_LINE:
        return [line]
    return [line[i : i + MAX_LINE] for i in range(0, len(line), MAX_LINE)]


def _popen_options(*, pipesize: bool = True) -> dict[str, Any]:
    """The step leads a new session (POSIX) or process group (Windows) of its own: its whole
    tree can be ended, and a Ctrl-C at the terminal reaches toolrun only.

    ``pipesize`` is Popen's; event loops that spawn by other means (uvloop) refuse it.
    """
    options: dict[str, Any] = {
        "stdin": subprocess.DEVNULL,
        "stdout": subprocess.PIPE,
        "stderr": subprocess.PIPE,
    }
    if pipesize:
        options["pipesize"] = PIPE_SIZE if sys.platform.startswith("linux") else -1
    if sys.platform == "win32":
        options["creationflags"] = subprocess.CREATE_NEW_PROCESS_GROUP
    else:
        options["start_new_session"] = True
    return options


def _start_error(argv0: str, exc: Exception) -> StartError:
    if isinstance(exc, FileNotFoundError):
        return StartError(f"{argv0}: no such program")
    if isinstance(exc, PermissionError):
        return StartError(f"{argv0}: not executable (permission denied)")
    if isinstance(exc, OSError):
        return StartError(f"{argv0}: {exc.strerror or exc}")
    return StartError(f"{argv0}: {exc}")  # a NUL byte in an argument, for one


class StepProcess:
    """One running program whose stdout and stderr arrive through ``on_lines``."""

    def __init__(
        self,
        argv: list[str],
        *,
        cwd: Path,
        env: dict[str, str],
        encoding: str,
        on_lines: Callable[[str, list[str]], None],
        on_raw: Callable[[str, bytes], None] | None = None,
        label: str = "step",
    ) -> None:
        self.argv = argv
        self.cwd = cwd
        self.env = env
        self.encoding = encoding
        self.on_lines = on_lines
        self.on_raw = on_raw
        self.label = label
        self.process: asyncio.subprocess.Process | _Child | None = None
        self.box: Box | None = None

    async def start(self) -> None:
        import asyncio

        from .containment import new_box

        self.box = box = new_box(self.label)
        try:
            if sys.platform.startswith("linux"):
                # Spawned here rather than by asyncio: the spawn must happen inside the box
                # (a cgroup), which asyncio's machinery gives no moment for, and uvloop's
                # would not take Popen's options. The loop only reads the pipes and the pidfd.
                with box.spawning():
                    popen = subprocess.Popen(
                        self.argv, cwd=self.cwd, env=self.env, **_popen_options()
                    )
                self.process = await _Child.attach(popen)
            else:
                options = _popen_options(pipesize=is_stdlib_loop(asyncio.get_running_loop()))
                self.process = await asyncio.create_subprocess_exec(
                    *self.argv, cwd=self.cwd, env=self.env, limit=READ_SIZE, **options
                )
        except (OSError, ValueError) as exc:
            box.close()
            raise _start_error(self.argv[0], exc) from None
        box.adopt(self.process.pid)

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    async def run(self, *, orphan_grace: float = 1.0, kill_grace: float = 5.0) -> int:
        """Read all output and wait for the exit; returns the return code.

        When the program exits while children it left behind still hold its output open,
        they get ``orphan_grace`` seconds to finish, then the tree is ended; what is left
        running once the output is closed is ended too, so nothing of a step outlives it.
        """
        import asyncio

        process, box = self.process, self.box
        assert process is not None and process.stdout is not None and process.stderr is not None
        assert box is not None
        readers = [
            asyncio.ensure_future(self._read("stdout", process.stdout)),
            asyncio.ensure_future(self._read("stderr", process.stderr)),
        ]
        # asyncio's own wait() returns only once the pipes are closed too, which children
        # that outlive the program may never do: watch the program's exit itself as well.
        finished = asyncio.ensure_future(process.wait())
        try:
            while process.returncode is None:
                await asyncio.wait([finished], timeout=0.1)
            _, reading = await asyncio.wait(readers, timeout=orphan_grace)
            if reading:
                await self._end(kill_grace)
                await asyncio.wait(readers, timeout=kill_grace)
            if not box.is_empty():
                await self._end(0.5)
            await asyncio.wait([finished], timeout=kill_grace)
        finally:
            for task in (*readers, finished):
                task.cancel()
            await asyncio.gather(*readers, finished, return_exceptions=True)
            box.close()
        return process.returncode

    async def _read(self, stream: str, reader: asyncio.StreamReader) -> None:
        splitter = LineSplitter(self.encoding)
        while True:
            data = await reader.read(READ_SIZE)
            if not data:
                break
            if self.on_raw is not None:
                self.on_raw(stream, data)
            lines = splitter.feed(data)
            if lines:
                self.on_lines(stream, lines)
        rest = splitter.finish()
        if rest:
            self.on_lines(stream, rest)

    async def _end(self, grace: float, forced: Callable[[], bool] | None = None) -> None:
        import asyncio

        from .containment import end

        assert self.box is not None
        await asyncio.to_thread(end, self.box, grace=grace, forced=forced)

    async def terminate(self, *, grace: float, forced: Callable[[], bool] | None = None) -> None:
        if self.process is not None and self.box is not None and not self.box.is_empty():
            await self._end(grace, forced)


class _Child:
    """A process spawned by toolrun itself, followed by the running event loop: its pipes as
    StreamReaders and its exit through a pidfd (Linux), so no child watcher is involved."""

    def __init__(self, popen: subprocess.Popen[bytes]) -> None:
        import asyncio

        self.popen = popen
        self.pid = popen.pid
        self.stdout: asyncio.StreamReader | None = None
        self.stderr: asyncio.StreamReader | None = None
        self._exited: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    @property
    def returncode(self) -> int | None:
        return self.popen.returncode

    @classmethod
    async def attach(cls, popen: subprocess.Popen[bytes]) -> _Child:
        import asyncio

        child = cls(popen)
        loop = asyncio.get_running_loop()
        try:
            child.stdout = await _reader(loop, popen.stdout)
            child.stderr = await _reader(loop, popen.stderr)
            child._watch_exit(loop)
        except BaseException:
            popen.kill()
            popen.wait()
            raise
        return child

    def _watch_exit(self, loop: asyncio.AbstractEventLoop) -> None:
        try:
            if sys.platform != "linux":
                raise OSError("pidfds are Linux's")
            pidfd = os.pidfd_open(self.pid)
        except OSError:
            # No pidfds (an old kernel, a sandbox that refuses them): a thread waits instead.
            waiting = loop.run_in_executor(None, self.popen.wait)
            waiting.add_done_callback(lambda done: self._exit(None, loop))
            return
        loop.add_reader(pidfd, self._exit, pidfd, loop)

    def _exit(self, pidfd: int | None, loop: asyncio.AbstractEventLoop) -> None:
        if pidfd is not None:
            loop.remove_reader(pidfd)
            os.close(pidfd)
        code = self.popen.wait()  # it has exited: this only reaps it
        if not self._exited.done():
            self._exited.set_result(code)

    async def wait(self) -> int:
        return await self._exited


async def _reader(loop: asyncio.AbstractEventLoop, pipe: IO[bytes] | None) -> asyncio.StreamReader:
    import asyncio

    assert pipe is not None
    reader = asyncio.StreamReader(limit=READ_SIZE)
    if not is_stdlib_loop(loop):
        # uvloop closes the descriptor itself, then the file object again: a second close(2)
        # of a number another thread may have been given meanwhile (a cgroup.procs being
        # written, a folder being listed), which it then loses. The loop gets a duplicate of
        # its own, wrapped so that closing the wrapper leaves it to the loop.
        own = os.dup(pipe.fileno())
        pipe.close()
        pipe = open(own, "rb", buffering=0, closefd=False)  # noqa: SIM115  # the loop closes it
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), pipe)
    return reader


class ThreadedStepProcess:
    """``StepProcess`` for a caller without an event loop: ``pump`` hands what the program
    wrote to the callbacks on the caller's thread.

    On POSIX the caller's thread reads the pipes itself, through a selector. On Windows,
    whose pipes cannot be selected, two threads read them and a third waits for the exit.
    Starting those threads while the program starts on the other core took 3 ms of
    ``toolrun exec``'s budget on POSIX; tests run the threads there too (``use_threads``).
    """

    def __init__(
        self,
        argv: list[str],
        *,
        cwd: Path,
        env: dict[str, str],
        encoding: str,
        on_lines: Callable[[str, list[str]], None],
        on_raw: Callable[[str, bytes], None] | None = None,
        orphan_grace: float = 1.0,
        kill_grace: float = 5.0,
        use_threads: bool = IS_WINDOWS,
        label: str = "step",
    ) -> None:
        self.argv = argv
        self.label = label
        self.box: Box | None = None
        self.cwd = cwd
        self.env = env
        self.on_lines = on_lines
        self.on_raw = on_raw
        self.orphan_grace = orphan_grace
        self.kill_grace = kill_grace
        self.use_threads = use_threads
        self.process: subprocess.Popen[bytes] | None = None
        self.returncode: int | None = None
        self._splitters = {"stdout": LineSplitter(encoding), "stderr": LineSplitter(encoding)}
        self._open = set(self._splitters)
        self._queue: queue.Queue[tuple[str, bytes | int | None]] | None = None  # threads only
        self._selector: selectors.BaseSelector | None = None
        self._exited_at = 0.0
        self._orphans_ended_at: float | None = None

    def start(self) -> None:
        from .containment import new_box

        self.box = new_box(self.label)
        try:
            with self.box.spawning():
                self.process = subprocess.Popen(
                    self.argv, cwd=self.cwd, env=self.env, **_popen_options()
                )
        except (OSError, ValueError) as exc:
            self.box.close()
            raise _start_error(self.argv[0], exc) from None
        self.box.adopt(self.process.pid)
        assert self.process.stdout is not None and self.process.stderr is not None
        pipes = (("stdout", self.process.stdout), ("stderr", self.process.stderr))
        if not self.use_threads:
            import selectors

            self._selector = selectors.DefaultSelector()
            for stream, pipe in pipes:
                self._selector.register(pipe, selectors.EVENT_READ, stream)
            return
        import queue
        import threading

        # Bounded: a tool writing faster than its lines are handled waits, as it does for the
        # event loop, instead of filling toolrun's memory.
        self._queue = queue.Queue(QUEUED_READS)
        for stream, pipe in pipes:
            threading.Thread(target=self._read, args=(stream, pipe), daemon=True).start()
        threading.Thread(target=self._wait, daemon=True).start()

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    @property
    def done(self) -> bool:
        """The program exited and its output is read (or given up on: see ``pump``)."""
        return self.returncode is not None and not self._open

    def pump(self, timeout: float) -> None:
        """Deliver what arrived, waiting up to ``timeout`` seconds for the first of it.

        When the program exited while children it left behind still hold its output open,
        they get ``orphan_grace`` seconds to finish, then the tree is ended; output still
        open ``kill_grace`` seconds after that is given up on.
        """
        if self._selector is not None:
            self._pump_selected(timeout)
        else:
            self._pump_queued(timeout)
        if self.returncode is None or not self._open:
            return
        now = time.monotonic()
        if self._orphans_ended_at is None and now - self._exited_at > self.orphan_grace:
            self._end(self.kill_grace)
            self._orphans_ended_at = time.monotonic()
        elif self._orphans_ended_at is not None and now - self._orphans_ended_at > self.kill_grace:
            self._open.clear()

    def finish(self) -> int:
        """After ``done``: end what the program left running, so nothing outlives its step."""
        assert self.process is not None and self.returncode is not None
        assert self.box is not None
        if self._selector is not None:
            for key in list(self._selector.get_map().values()):
                key.fileobj.close()  # type: ignore[union-attr]  # given up on: see pump
            self._selector.close()
        if not self.box.is_empty():
            self._end(0.5)
        self.box.close()
        return self.returncode

    def terminate(self, *, grace: float, forced: Callable[[], bool] | None = None) -> None:
        if self.box is not None and not self.box.is_empty():
            self._end(grace, forced)

    def _end(self, grace: float, forced: Callable[[], bool] | None = None) -> None:
        from .containment import end

        assert self.box is not None
        end(self.box, grace=grace, forced=forced)

    def _pump_queued(self, timeout: float) -> None:
        import queue

        assert self._queue is not None
        try:
            item = self._queue.get(timeout=timeout)
            while True:
                self._deliver(*item)
                item = self._queue.get_nowait()
        except queue.Empty:
            pass

    def _pump_selected(self, timeout: float) -> None:
        assert self._selector is not None and self.process is not None
        deadline = time.monotonic() + timeout
        if self._open:
            for key, _ in self._selector.select(timeout):
                try:
                    data = os.read(key.fd, READ_SIZE)
                except OSError:
                    data = b""
                if not data:
                    self._selector.unregister(key.fileobj)
                    key.fileobj.close()  # type: ignore[union-attr]
                self._deliver(key.data, data or None)
        if self.returncode is not None:
            return
        if self._open:
            code = self.process.poll()
        else:
            # Both pipes closed: the program is ending, or closed them early and goes on.
            try:
                code = self.process.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                code = None
        if code is not None:
            self._deliver("exit", code)

    def _deliver(self, stream: str, data: bytes | int | None) -> None:
        if isinstance(data, int):
            self.returncode = data
            self._exited_at = time.monotonic()
            return
        splitter = self._splitters[stream]
        if data is None:
            self._open.discard(stream)
            lines = splitter.finish()
        else:
            if self.on_raw is not None:
                self.on_raw(stream, data)
            lines = splitter.feed(data)
        if lines:
            self.on_lines(stream, lines)

    def _read(self, stream: str, pipe: IO[bytes]) -> None:
        # The pipe belongs to this thread: it closes it once read, never while reading.
        assert self._queue is not None
        try:
            while data := os.read(pipe.fileno(), READ_SIZE):
                self._queue.put((stream, data))
        except OSError:
            pass
        finally:
            pipe.close()
            self._queue.put((stream, None))

    def _wait(self) -> None:
        assert self.process is not None and self._queue is not None
        self._queue.put(("exit", self.process.wait()))


def process_start_time(pid: int) -> float | None:
    """When ``pid`` started, in a unit of the system's choosing: it tells a process from a
    later one given the same number. None when there is no such process.

    Linux reads /proc, which costs nothing at start-up; elsewhere psutil answers.
    """
    if sys.platform.startswith("linux"):
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            return None
        # After the command's closing parenthesis, field 22 (start time) is the 20th.
        return float(stat.rsplit(")", 1)[1].split()[19])
    import psutil

    try:
        return float(psutil.Process(pid).create_time())
    except psutil.Error:
        return None


def end_left_processes(processes: list[tuple[int, float, str | None]]) -> None:
    """End the trees of attempts whose runner died: their cgroup where they had one;
    otherwise where their leader is still the process that was recorded (not a later one
    with the same number), or, the leader gone, where its process group still exists. POSIX
    never gives a process the number of a group that still has members, so that group is
    the step's (on Windows there is none to find, and the Job Object ended with toolrun)."""
    from .containment import GroupBox, end, end_left_cgroup, group_exists

    for pid, started, cgroup in processes:
        if cgroup:
            end_left_cgroup(Path(cgroup))
            continue
        now_started = process_start_time(pid)
        if now_started == started or (now_started is None and group_exists(pid)):
            box = GroupBox()
            box.adopt(pid)
            end(box, grace=2.0)


def is_stdlib_loop(loop: asyncio.AbstractEventLoop) -> bool:
    """An event loop of the standard library, whose subprocesses are Popen's (not uvloop's,
    which spawns through libuv and takes fewer options)."""
    return type(loop).__module__.startswith("asyncio.")
