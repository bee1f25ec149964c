"""Starting a step's process, reading its output as lines, and ending its whole tree.

POSIX: the process leads a new session, so its process group holds its children; ending it
signals the group and every descendant psutil can still see. Windows: a new process group,
CTRL_BREAK first, then psutil ends the tree. The Windows branches stay small; the logic they
call (``LineSplitter``, ``exit_description``) is plain and tested everywhere.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import psutil

IS_WINDOWS = sys.platform.startswith("win")
READ_SIZE = 1024 * 1024
# A bigger pipe (Linux) lets a chatty tool run ahead while toolrun handles the last batch, and
# makes each batch of lines larger: fewer events, fewer wake-ups.
PIPE_SIZE = 1024 * 1024
MAX_LINE = 64 * 1024  # longer lines are cut into pieces of this many characters


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


@dataclass
class Finished:
    returncode: int


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
        kwargs: dict[str, object] = {}
        if IS_WINDOWS:
            kwargs["creationflags"] = subprocess.CREATE_NEW_PROCESS_GROUP  # type: ignore[attr-defined]
        else:
            kwargs["start_new_session"] = True
        try:
            self.process = await asyncio.create_subprocess_exec(
                *self.argv,
                cwd=self.cwd,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                limit=READ_SIZE,
                pipesize=PIPE_SIZE if sys.platform.startswith("linux") else -1,
                **kwargs,  # type: ignore[arg-type]
            )
        except FileNotFoundError:
            raise StartError(f"{self.argv[0]}: no such program") from None
        except PermissionError:
            raise StartError(f"{self.argv[0]}: not executable (permission denied)") from None
        except OSError as exc:
            raise StartError(f"{self.argv[0]}: cannot start: {exc.strerror or exc}") from None
        except ValueError as exc:  # an argument or variable holding a NUL byte, for one
            raise StartError(f"{self.argv[0]}: cannot start: {exc}") from None

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    async def run(self, *, orphan_grace: float = 1.0, kill_grace: float = 5.0) -> int:
        """Read all output and wait for the exit; returns the return code.

        When the program exits while children it left behind still hold its output open,
        they get ``orphan_grace`` seconds to finish, then the tree is ended.
        """
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

    async def terminate(self, *, grace: float) -> None:
        if self.process is not None and self.process.returncode is None:
            await kill_tree(self.process.pid, grace=grace)


async def kill_tree(pid: int, *, grace: float) -> None:
    """End ``pid`` and all it started: politely, then by force after ``grace`` seconds."""
    import psutil

    members: list[psutil.Process] = []
    with contextlib.suppress(psutil.NoSuchProcess):
        leader = psutil.Process(pid)
        members = [leader, *leader.children(recursive=True)]
    members.extend(_group_members(pid, members))
    if not members and not _group_exists(pid):
        return
    _signal_all(pid, members, polite=True)
    loop = asyncio.get_running_loop()
    alive = members
    if grace > 0:
        _gone, alive = await loop.run_in_executor(
            None, lambda: psutil.wait_procs(members, timeout=grace)
        )
    if alive or _group_exists(pid):
        _signal_all(pid, alive, polite=False)
        await loop.run_in_executor(None, lambda: psutil.wait_procs(alive, timeout=5))


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
