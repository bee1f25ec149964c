"""Starting a step's process, reading its output as lines, and ending its whole tree.

POSIX: the process leads a new session, so its process group holds its children; ending it
signals the group and every descendant psutil can still see. Windows: a new process group,
CTRL_BREAK first, then psutil ends the tree. The Windows branches stay small; the logic they
call (``LineSplitter``, ``exit_description``) is plain and tested everywhere.
"""

from __future__ import annotations

import codecs
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

# `typing` costs milliseconds at start-up; annotations alone never need it at run time.
TYPE_CHECKING = False
if TYPE_CHECKING:
    import asyncio
    import queue
    import selectors
    from typing import IO, Any

    import psutil

IS_WINDOWS = sys.platform.startswith("win")
READ_SIZE = 1024 * 1024
# A bigger pipe (Linux) lets a chatty tool run ahead while toolrun handles the last batch, and
# makes each batch of lines larger: fewer events, fewer wake-ups.
PIPE_SIZE = 1024 * 1024
MAX_LINE = 64 * 1024  # longer lines are cut into pieces of this many characters
QUEUED_READS = 8  # reads of up to READ_SIZE waiting for the thread that handles them


class StartError(Exception):
    """The program could not be started at all (missing, not executable, ...)."""


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


def exit_description(returncode: int) -> str:
    """``exit 3``, or ``killed by SIGKILL`` for a POSIX signal (a negative return code)."""
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        return f"killed by {name}"
    return f"exit {returncode}"


def _popen_options() -> dict[str, Any]:
    """The step leads a new session (POSIX) or process group (Windows) of its own: its whole
    tree can be ended, and a Ctrl-C at the terminal reaches toolrun only."""
    options: dict[str, Any] = {
        "stdin": subprocess.DEVNULL,
        "stdout": subprocess.PIPE,
        "stderr": subprocess.PIPE,
        "pipesize": PIPE_SIZE if sys.platform.startswith("linux") else -1,
    }
    if IS_WINDOWS:
        options["creationflags"] = subprocess.CREATE_NEW_PROCESS_GROUP  # type: ignore[attr-defined]
    else:
        options["start_new_session"] = True
    return options


def _start_error(argv0: str, exc: Exception) -> StartError:
    if isinstance(exc, FileNotFoundError):
        return StartError(f"{argv0}: no such program")
    if isinstance(exc, PermissionError):
        return StartError(f"{argv0}: not executable (permission denied)")
    if isinstance(exc, OSError):
        return StartError(f"{argv0}: cannot start: {exc.strerror or exc}")
    return StartError(f"{argv0}: cannot start: {exc}")  # a NUL byte in an argument, for one


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
    ) -> None:
        self.argv = argv
        self.cwd = cwd
        self.env = env
        self.encoding = encoding
        self.on_lines = on_lines
        self.on_raw = on_raw
        self.process: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        import asyncio

        try:
            self.process = await asyncio.create_subprocess_exec(
                *self.argv, cwd=self.cwd, env=self.env, limit=READ_SIZE, **_popen_options()
            )
        except (OSError, ValueError) as exc:
            raise _start_error(self.argv[0], exc) from None

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    async def run(self, *, orphan_grace: float = 1.0, kill_grace: float = 5.0) -> int:
        """Read all output and wait for the exit; returns the return code.

        When the program exits while children it left behind still hold its output open,
        they get ``orphan_grace`` seconds to finish, then the tree is ended.
        """
        import asyncio

        process = self.process
        assert process is not None and process.stdout is not None and process.stderr is not None
        readers = [
            asyncio.ensure_future(self._read("stdout", process.stdout)),
            asyncio.ensure_future(self._read("stderr", process.stderr)),
        ]
        # asyncio's wait() returns only once the pipes are closed too, which children that
        # outlive the program may never do: watch the program's own exit as well.
        finished = asyncio.ensure_future(process.wait())
        try:
            while not finished.done():
                await asyncio.wait([finished], timeout=0.1)
                if not finished.done() and process.returncode is not None:
                    await asyncio.wait([finished], timeout=orphan_grace)
                    if not finished.done():
                        await kill_tree(process.pid, grace=kill_grace)
                        await asyncio.wait([finished], timeout=kill_grace)
                    break
            # Children that closed their output (daemonised helpers) end with the step too,
            # so nothing of a step outlives it. One cheap check in the usual case.
            if _group_exists(process.pid):
                await kill_tree(process.pid, grace=0.5)
            await asyncio.wait(readers, timeout=kill_grace)
        finally:
            for task in (*readers, finished):
                task.cancel()
            await asyncio.gather(*readers, finished, return_exceptions=True)
        assert process.returncode is not None
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

    async def terminate(self, *, grace: float, forced: Callable[[], bool] | None = None) -> None:
        if self.process is not None and self.process.returncode is None:
            await kill_tree(self.process.pid, grace=grace, forced=forced)


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
    ) -> None:
        self.argv = argv
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
        try:
            self.process = subprocess.Popen(
                self.argv, cwd=self.cwd, env=self.env, **_popen_options()
            )
        except (OSError, ValueError) as exc:
            raise _start_error(self.argv[0], exc) from None
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
            assert self.process is not None
            end_tree(self.process.pid, grace=self.kill_grace)
            self._orphans_ended_at = time.monotonic()
        elif self._orphans_ended_at is not None and now - self._orphans_ended_at > self.kill_grace:
            self._open.clear()

    def finish(self) -> int:
        """After ``done``: end what the program left running, so nothing outlives its step."""
        assert self.process is not None and self.returncode is not None
        if self._selector is not None:
            for key in list(self._selector.get_map().values()):
                key.fileobj.close()  # type: ignore[union-attr]  # given up on: see pump
            self._selector.close()
        if _group_exists(self.process.pid):
            end_tree(self.process.pid, grace=0.5)
        return self.returncode

    def terminate(self, *, grace: float, forced: Callable[[], bool] | None = None) -> None:
        if self.process is not None and self.returncode is None:
            end_tree(self.process.pid, grace=grace, forced=forced)

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


def end_left_processes(processes: list[tuple[int, float]], *, grace: float = 2.0) -> None:
    """End the trees of steps whose runner died: where their leader is still the process
    that was recorded (not a later one with the same number), or, the leader gone, where its
    process group still exists. POSIX never gives a process the number of a group that still
    has members, so that group is the step's (on Windows there is none to find)."""
    for pid, started in processes:
        now_started = process_start_time(pid)
        if now_started == started or (now_started is None and _group_exists(pid)):
            end_tree(pid, grace=grace)


def wait_for_children_with_pidfds() -> None:
    """Have the running event loop wait for step processes through Linux pidfds.

    Python 3.11's default waits for each child in a thread of its own, started for it; a
    pidfd lets the loop itself wait. Python 3.12 chooses pidfds by itself where it can.
    """
    if sys.version_info >= (3, 12) or not hasattr(os, "pidfd_open"):
        return
    import asyncio

    try:
        os.close(os.pidfd_open(os.getpid()))  # a kernel or sandbox may refuse pidfds
    except OSError:
        return
    watcher = asyncio.PidfdChildWatcher()
    watcher.attach_loop(asyncio.get_running_loop())
    asyncio.get_event_loop_policy().set_child_watcher(watcher)


async def kill_tree(pid: int, *, grace: float, forced: Callable[[], bool] | None = None) -> None:
    """``end_tree`` without holding up the event loop."""
    import asyncio

    await asyncio.to_thread(end_tree, pid, grace=grace, forced=forced)


def end_tree(pid: int, *, grace: float, forced: Callable[[], bool] | None = None) -> None:
    """End ``pid`` and all it started: politely, then by force after ``grace`` seconds, or
    as soon as ``forced()`` says so (a second Ctrl-C)."""
    import psutil

    members: list[psutil.Process] = []
    with contextlib.suppress(psutil.NoSuchProcess):
        leader = psutil.Process(pid)
        members = [leader, *leader.children(recursive=True)]
    members.extend(_group_members(pid, members))
    if not members and not _group_exists(pid):
        return
    _signal_all(pid, members, polite=True)
    alive = members
    deadline = time.monotonic() + grace
    while alive and (remaining := deadline - time.monotonic()) > 0:
        if forced is not None and forced():
            break
        _gone, alive = psutil.wait_procs(alive, timeout=min(remaining, 0.1))
    if alive or _group_exists(pid):
        _signal_all(pid, alive, polite=False)
        psutil.wait_procs(alive, timeout=5)


def _group_members(pgid: int, known: list[psutil.Process]) -> list[psutil.Process]:
    """Processes still in the step's process group whose parent already exited (POSIX)."""
    if IS_WINDOWS:
        return []
    import psutil

    known_pids = {p.pid for p in known}
    members = []
    for process in psutil.process_iter():
        with contextlib.suppress(psutil.Error, OSError):
            if process.pid not in known_pids and os.getpgid(process.pid) == pgid:
                members.append(process)
    return members


def _group_exists(pgid: int) -> bool:
    if IS_WINDOWS:
        return False
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def _signal_all(pgid: int, members: list[psutil.Process], *, polite: bool) -> None:
    import psutil

    if IS_WINDOWS:
        for process in members:
            with contextlib.suppress(psutil.Error):
                if polite:
                    process.send_signal(signal.CTRL_BREAK_EVENT)  # type: ignore[attr-defined]
                else:
                    process.kill()
        return
    sig = signal.SIGTERM if polite else signal.SIGKILL
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)
    for process in members:
        with contextlib.suppress(psutil.Error):
            process.send_signal(sig)
