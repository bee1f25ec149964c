"""Keeping each step attempt's processes together, so that all of them can be ended.

Which kind holds an attempt is decided once per process (``kind_in_force``), the first the
machine allows:

- ``cgroup`` (Linux, cgroup v2 mounted and toolrun allowed to make cgroups below its own: as
  root, or in a delegated subtree such as a systemd unit with ``Delegate=yes``). The attempt
  starts inside a cgroup of its own, and ``cgroup.kill`` ends everything in it, whatever it
  did to leave its parent (``setsid``, a double fork). Nothing escapes.
- ``job object`` (Windows): the attempt's process joins a Job Object made with
  kill-on-job-close; ``TerminateJobObject`` ends the tree, and so does Windows itself when
  toolrun dies and its handle is closed.
- ``process group`` (elsewhere, or ``TOOLRUN_CONTAINMENT=group``): the attempt leads a new
  session; ending it signals the group and every descendant psutil can see. A process that
  leaves both its session and its parent (a daemon's double fork) escapes.

None of them reaps the attempt's own process: that is its owner's (asyncio's, Popen's), and a
second ``waitpid`` makes the owner see a wrong exit status.

It stays whole: the three kinds are one contract (``Box``: spawning, adopt, is_empty, signal,
close) that ``end`` drives whatever the kind, and the choice among them is made here, once.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

# `typing` costs milliseconds at start-up; annotations alone never need it at run time.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Protocol

    import psutil

    class Box(Protocol):
        """One attempt's container."""

        kind: str
        ref: str | None  # recorded in the store, to end it after toolrun itself died

        def spawning(self) -> contextlib.AbstractContextManager[None]: ...
        def adopt(self, pid: int) -> None: ...
        def is_empty(self) -> bool: ...
        def signal(self, *, polite: bool) -> None: ...
        def freeze(self, frozen: bool) -> None: ...
        def close(self) -> None: ...


IS_WINDOWS = sys.platform.startswith("win")
CGROUP = "cgroup"
JOB = "job object"
GROUP = "process group"
POLL_SECONDS = 0.01  # how often an ending attempt is looked at: a tenth of the deadline slack
FORCED_WAIT = 5.0  # after the forceful signal, how long to wait for the last to go


def end(box: Box, *, grace: float, forced: Callable[[], bool] | None = None) -> None:
    if getattr(box, "frozen", False):
        box.freeze(False)  # a frozen process cannot take even the polite signal
    """End everything in ``box``: politely, then by force after ``grace`` seconds, or as soon
    as ``forced()`` says so (a second Ctrl-C)."""
    if box.is_empty():
        return
    box.signal(polite=True)
    if _wait_empty(box, grace, forced):
        return
    box.signal(polite=False)
    _wait_empty(box, FORCED_WAIT, None)


def _wait_empty(box: Box, seconds: float, forced: Callable[[], bool] | None) -> bool:
    deadline = time.monotonic() + seconds
    while True:
        if box.is_empty():
            return True
        if time.monotonic() >= deadline or (forced is not None and forced()):
            return False
        time.sleep(POLL_SECONDS)


# -- which kind -------------------------------------------------------------------------------

_KIND: str | None = None
_CGROUPS: Cgroups | None = None


def kind_in_force() -> str:
    """The kind this process puts attempts in (decided on first use)."""
    global _KIND, _CGROUPS
    if _KIND is None:
        wanted = os.environ.get("TOOLRUN_CONTAINMENT", "auto").strip().lower()
        if IS_WINDOWS:
            _KIND = JOB if wanted != "group" and _jobs_work() else GROUP
        elif wanted != "group" and sys.platform.startswith("linux"):
            _CGROUPS = Cgroups.here()
            _KIND = CGROUP if _CGROUPS is not None else GROUP
        else:
            _KIND = GROUP
    return _KIND


def describe_containment() -> str:
    """One line for ``toolrun --version --verbose`` and the docs' claim."""
    kind = kind_in_force()
    if kind == CGROUP:
        assert _CGROUPS is not None
        return f"containment: cgroup (cgroup v2, below {_CGROUPS.home})"
    if kind == JOB:
        return "containment: job object (kill on job close)"
    reason = (
        "TOOLRUN_CONTAINMENT=group"
        if os.environ.get("TOOLRUN_CONTAINMENT", "").strip().lower() == "group"
        else "no writable cgroup v2 here"
        if sys.platform.startswith("linux")
        else "no cgroups on this system"
    )
    return (
        f"containment: process group and descendants ({reason}); "
        "a daemonising grandchild can escape"
    )


_READYING: threading.Thread | None = None
_READY: CgroupBox | None = None


def get_ready() -> None:
    """Begin moving this process into the next attempt's cgroup now, in a thread.

    The kernel's first cgroup move after a quiet spell waits for an RCU grace period (6 to 20
    ms on the machine of docs/benchmarks.md; mounting cgroup2 with ``favordynmods`` removes
    it). ``toolrun exec`` calls this first thing, so the wait passes while it records the run
    instead of before its tool starts. Only for a process that starts one attempt at a time.
    """
    global _READYING
    if _READYING is None and not IS_WINDOWS:
        _READYING = threading.Thread(target=_ready, name="cgroup", daemon=True)
        _READYING.start()


def _ready() -> None:
    global _READY
    if kind_in_force() == CGROUP:
        assert _CGROUPS is not None
        with contextlib.suppress(OSError):
            box = _CGROUPS.new("next")
            _join(box.path)
            box.entered = True
            _READY = box


def new_box(label: str) -> Box:
    """A container for one attempt; ``label`` names it where the system shows it."""
    global _READY
    if _READYING is not None:
        _READYING.join()
    if _READY is not None:
        box, _READY = _READY, None
        return box
    kind = kind_in_force()
    if kind == CGROUP:
        assert _CGROUPS is not None
        try:
            return _CGROUPS.new(label)
        except OSError:
            pass  # the subtree went away or filled up (cgroup.max.descendants): as before
    if kind == JOB:
        return JobBox()
    return GroupBox()


# -- process group (POSIX) and descendants ----------------------------------------------------


class GroupBox:
    """The attempt's process leads a session (POSIX) or process group (Windows) of its own."""

    kind = GROUP
    ref: str | None = None

    def __init__(self) -> None:
        self.pid: int | None = None
        self.frozen = False
        self._members: list[psutil.Process] = []

    @contextlib.contextmanager
    def spawning(self) -> Iterator[None]:
        yield

    def adopt(self, pid: int) -> None:
        self.pid = pid

    def is_empty(self) -> bool:
        if self.pid is None:
            return True
        if self._members:
            return not any(_running(process) for process in self._members)
        if sys.platform == "win32":
            return not _running_pid(self.pid)
        return not group_exists(self.pid)  # the usual answer, without importing psutil

    def signal(self, *, polite: bool) -> None:
        if self.pid is None:
            return
        self._see_members()
        signal_group(self.pid, self._members, polite=polite)

    def _see_members(self) -> None:
        import psutil

        assert self.pid is not None
        members: list[psutil.Process] = []
        with contextlib.suppress(psutil.NoSuchProcess):
            leader = psutil.Process(self.pid)
            members = [leader, *leader.children(recursive=True)]
        members.extend(_group_members(self.pid, members))
        known = {process.pid for process in self._members}
        self._members.extend(process for process in members if process.pid not in known)

    def freeze(self, frozen: bool) -> None:
        """SIGSTOP (or SIGCONT) to the group and every descendant seen: what left both, as
        for ending it, is missed."""
        if sys.platform == "win32":
            raise _cannot_freeze_on_windows()
        if self.pid is None:
            return
        self._see_members()
        freeze_group(self.pid, self._members, frozen)
        self.frozen = frozen

    def close(self) -> None:
        pass


def _running(process: psutil.Process) -> bool:
    import psutil

    try:
        return bool(process.is_running() and process.status() != psutil.STATUS_ZOMBIE)
    except psutil.Error:
        return False


def _running_pid(pid: int) -> bool:
    import psutil

    try:
        return _running(psutil.Process(pid))
    except psutil.Error:
        return False


def _group_members(pgid: int, known: list[psutil.Process]) -> list[psutil.Process]:
    """Processes still in the step's process group whose parent already exited (POSIX)."""
    if sys.platform == "win32":
        return []
    import psutil

    known_pids = {p.pid for p in known}
    members = []
    for process in psutil.process_iter():
        with contextlib.suppress(psutil.Error, OSError):
            if process.pid not in known_pids and os.getpgid(process.pid) == pgid:
                members.append(process)
    return members


def group_exists(pgid: int) -> bool:
    """Whether a process group of that number has a member (POSIX; False on Windows)."""
    if sys.platform == "win32":
        return False
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def freeze_group(pgid: int, members: list[psutil.Process], frozen: bool) -> None:
    import psutil

    sig = signal.SIGSTOP if frozen else signal.SIGCONT  # type: ignore[attr-defined,unused-ignore]
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)  # type: ignore[attr-defined,unused-ignore]
    for process in members:
        with contextlib.suppress(psutil.Error):
            process.send_signal(sig)


def freeze_refusal(platform: str = sys.platform) -> str | None:
    """Why ``pause --now`` cannot freeze steps on this machine, or None when it can."""
    if platform == "win32":
        return (
            "Windows: toolrun does not suspend a step's processes; pause without --now lets "
            "the running steps finish and starts no further one"
        )
    return None


def _cannot_freeze_on_windows() -> Exception:
    from .protocol import FreezeRefused

    return FreezeRefused(freeze_refusal("win32") or "")


def signal_group(pgid: int, members: list[psutil.Process], *, polite: bool) -> None:
    import psutil

    if sys.platform == "win32":
        for process in members:
            with contextlib.suppress(psutil.Error):
                if polite:
                    process.send_signal(signal.CTRL_BREAK_EVENT)
                else:
                    process.kill()
        return
    sig = signal.SIGTERM if polite else signal.SIGKILL
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)
    for process in members:
        with contextlib.suppress(psutil.Error):
            process.send_signal(sig)


# -- cgroup v2 (Linux) ------------------------------------------------------------------------


def cgroup2_mount(mounts: str) -> Path | None:
    """Where the cgroup v2 hierarchy is mounted, from /proc/self/mounts' text."""
    for line in mounts.splitlines():
        fields = line.split()
        if len(fields) >= 3 and fields[2] == "cgroup2":
            return Path(fields[1].replace("\\040", " "))
    return None


def own_cgroup(membership: str) -> str | None:
    """This process's cgroup v2 path (``/user.slice/...``), from /proc/self/cgroup's text."""
    for line in membership.splitlines():
        if line.startswith("0::"):
            return line[3:].strip() or "/"
    return None


def holder_name(pid: int, started: float | None) -> str:
    """The folder holding one toolrun process's attempts: a later process given the same
    number is told apart by its start time."""
    return f"toolrun-{pid}-{int(started or 0)}"


class Cgroups:
    """The cgroups this process makes: ``<home>/toolrun-<pid>-<start>/<label>``, where home is
    the cgroup toolrun runs in."""

    def __init__(self, home: Path) -> None:
        from .processes import process_start_time

        self.home = home
        self.holder = home / holder_name(os.getpid(), process_start_time(os.getpid()))
        self._count = 0

    @classmethod
    def here(cls) -> Cgroups | None:
        """This process's cgroups, or None when the machine does not let it make them."""
        try:
            mount = cgroup2_mount(Path("/proc/self/mounts").read_text())
            path = own_cgroup(Path("/proc/self/cgroup").read_text())
        except OSError:
            return None
        if mount is None or path is None:
            return None
        home = mount / path.lstrip("/")
        if not os.access(home / "cgroup.procs", os.W_OK):
            return None
        cgroups = cls(home)
        try:
            cgroups.holder.mkdir(exist_ok=True)
            if not (cgroups.holder / "cgroup.kill").exists():  # Linux before 5.14
                cgroups.holder.rmdir()
                return None
        except OSError:
            return None
        cgroups.sweep()
        return cgroups

    def new(self, label: str) -> CgroupBox:
        self._count += 1
        safe = "".join(ch if ch.isalnum() or ch in "._-" else "_" for ch in label)[:100]
        path = self.holder / f"{self._count}-{safe}"
        try:
            path.mkdir()
        except FileNotFoundError:  # the holder was removed behind our back
            self.holder.mkdir(exist_ok=True)
            path.mkdir()
        return CgroupBox(path, self.home)

    def sweep(self) -> None:
        """End and remove what toolrun processes that died left below home: their attempts
        can only have been interrupted."""
        for entry in os.scandir(self.home):
            if entry.path != str(self.holder) and dead_holder(Path(entry.path)):
                for child in _subgroups(Path(entry.path)):
                    end_cgroup(child)
                with contextlib.suppress(OSError):
                    os.rmdir(entry.path)


def dead_holder(path: Path) -> bool:
    """Whether ``path`` holds the attempts of a toolrun process that is no longer running."""
    from .processes import process_start_time

    parts = path.name.split("-")
    if len(parts) != 3 or parts[0] != "toolrun" or not parts[1].isdigit():
        return False
    pid = int(parts[1])
    return holder_name(pid, process_start_time(pid)) != path.name


def end_left_cgroup(path: Path) -> None:
    """End an attempt whose toolrun died, and the folder that held it if nothing else is left
    there (a holder of a live toolrun is never removed: it would make its next cgroup)."""
    end_cgroup(path)
    if dead_holder(path.parent):
        with contextlib.suppress(OSError):
            os.rmdir(path.parent)


class CgroupBox:
    """An attempt's own cgroup."""

    kind = CGROUP

    def __init__(self, path: Path, home: Path) -> None:
        self.path = path
        self.home = home
        self.ref: str | None = str(path)
        self.entered = False  # this process is inside already (``get_ready``)
        self.frozen = False
        self._stuck: OSError | None = None

    @contextlib.contextmanager
    def spawning(self) -> Iterator[None]:
        """Spawn inside the cgroup: this process joins it for the moment of the spawn, so the
        child starts there, before it could fork (moving the child after it started would
        leave a window in which its own children stay outside). The move back is made at once:
        it costs 15 to 40 µs (the first move after a quiet spell more, see ``get_ready``),
        less than a thread to make it would."""
        with _SPAWN_LOCK:
            if not self.entered:
                _join(self.path)
            try:
                yield
            finally:
                try:
                    _join(self.home)
                    self.entered = False
                except OSError as exc:
                    self._stuck = exc

    def _settle(self) -> None:
        """This process is out of the cgroup: it may be looked at, signalled, removed."""
        if self._stuck is not None:
            raise self._stuck  # never kill a cgroup this process may still be in

    def adopt(self, pid: int) -> None:
        pass

    def is_empty(self) -> bool:
        self._settle()
        return not cgroup_populated(self.path)

    def signal(self, *, polite: bool) -> None:
        self._settle()
        if polite:
            for pid in cgroup_pids(self.path):
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGTERM)
        else:
            with contextlib.suppress(OSError):
                (self.path / "cgroup.kill").write_text("1")

    def freeze(self, frozen: bool) -> None:
        """The cgroup's freezer: every process in it stops, wherever it forked to."""
        self._settle()
        try:
            (self.path / "cgroup.freeze").write_text("1" if frozen else "0")
        except OSError as exc:
            from .protocol import FreezeRefused

            raise FreezeRefused(f"cannot write {self.path / 'cgroup.freeze'}: {exc}") from None
        self.frozen = frozen

    def close(self) -> None:
        self._settle()
        end_cgroup(self.path)


# One spawn at a time may move this process: two threads spawning at once would each send the
# other's child into the wrong cgroup.
_SPAWN_LOCK = threading.Lock()


def _join(path: Path) -> None:
    fd = os.open(path / "cgroup.procs", os.O_WRONLY)
    try:
        os.write(fd, b"0")  # 0: the writing process
    finally:
        os.close(fd)


def cgroup_populated(path: Path) -> bool:
    try:
        events = (path / "cgroup.events").read_text()
    except OSError:
        return False  # removed: nothing in it
    return "populated 1" in events


def cgroup_pids(path: Path) -> list[int]:
    """Every process in the cgroup and the cgroups below it."""
    pids: list[int] = []
    for group in (path, *_subgroups(path)):
        with contextlib.suppress(OSError):
            pids.extend(int(line) for line in (group / "cgroup.procs").read_text().split())
    return pids


def _subgroups(path: Path) -> list[Path]:
    found: list[Path] = []
    for root, dirs, _files in os.walk(path):
        found.extend(Path(root) / name for name in dirs)
    return found


def end_cgroup(path: Path, *, wait: float = FORCED_WAIT) -> None:
    """Kill everything in a cgroup and remove it (its own cgroups first)."""
    if not path.is_dir():
        return
    if cgroup_populated(path):
        with contextlib.suppress(OSError):
            (path / "cgroup.kill").write_text("1")
        deadline = time.monotonic() + wait
        while cgroup_populated(path) and time.monotonic() < deadline:
            time.sleep(POLL_SECONDS)
    for group in [*reversed(_subgroups(path)), path]:
        with contextlib.suppress(OSError):
            os.rmdir(group)


# -- Job Objects (Windows) --------------------------------------------------------------------

JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE = 0x2000
JOB_OBJECT_EXTENDED_LIMIT_INFORMATION = 9  # the information class SetInformationJobObject takes
JOB_OBJECT_BASIC_ACCOUNTING_INFORMATION = 1
PROCESS_SET_QUOTA = 0x0100
PROCESS_TERMINATE = 0x0001


def _jobs_work() -> bool:
    try:
        JobBox().close()
    except OSError:
        return False
    return True


class JobBox:
    """An attempt's Job Object (Windows). Children inherit it; closing it ends them."""

    kind = JOB
    ref: str | None = None  # nothing to record: Windows ends the job when its handle closes

    def __init__(self) -> None:
        self.pid: int | None = None
        self._job: int | None = _win32_job()

    @contextlib.contextmanager
    def spawning(self) -> Iterator[None]:
        yield

    def adopt(self, pid: int) -> None:
        # What the process starts between its creation and this call stays outside: a window
        # of microseconds, which CREATE_SUSPENDED would close were Popen able to resume it.
        self.pid = pid
        if self._job is not None:
            _win32_assign(self._job, pid)

    def is_empty(self) -> bool:
        return self._job is None or _win32_active_processes(self._job) == 0

    def signal(self, *, polite: bool) -> None:
        if polite and self.pid is not None:
            import psutil

            with contextlib.suppress(psutil.Error):
                leader = psutil.Process(self.pid)
                signal_group(self.pid, [leader, *leader.children(recursive=True)], polite=True)
        elif self._job is not None:
            _win32_terminate(self._job)

    def freeze(self, frozen: bool) -> None:
        raise _cannot_freeze_on_windows()

    def close(self) -> None:
        if self._job is not None:
            _win32_close(self._job)
            self._job = None


def _kernel32() -> object:
    import ctypes

    return ctypes.WinDLL("kernel32", use_last_error=True)  # type: ignore[attr-defined,unused-ignore]


def _win32_job() -> int:
    import ctypes
    from ctypes import wintypes

    class IoCounters(ctypes.Structure):
        _fields_ = [(name, ctypes.c_ulonglong) for name in (
            "ReadOperationCount", "WriteOperationCount", "OtherOperationCount",
            "ReadTransferCount", "WriteTransferCount", "OtherTransferCount",
        )]  # fmt: skip

    class BasicLimits(ctypes.Structure):
        _fields_ = [
            ("PerProcessUserTimeLimit", ctypes.c_int64),
            ("PerJobUserTimeLimit", ctypes.c_int64),
            ("LimitFlags", wintypes.DWORD),
            ("MinimumWorkingSetSize", ctypes.c_size_t),
            ("MaximumWorkingSetSize", ctypes.c_size_t),
            ("ActiveProcessLimit", wintypes.DWORD),
            ("Affinity", ctypes.c_size_t),
            ("PriorityClass", wintypes.DWORD),
            ("SchedulingClass", wintypes.DWORD),
        ]

    class ExtendedLimits(ctypes.Structure):
        _fields_ = [
            ("BasicLimitInformation", BasicLimits),
            ("IoInfo", IoCounters),
            ("ProcessMemoryLimit", ctypes.c_size_t),
            ("JobMemoryLimit", ctypes.c_size_t),
            ("PeakProcessMemoryUsed", ctypes.c_size_t),
            ("PeakJobMemoryUsed", ctypes.c_size_t),
        ]

    kernel32 = _kernel32()
    job = kernel32.CreateJobObjectW(None, None)  # type: ignore[attr-defined]
    if not job:
        raise ctypes.WinError(ctypes.get_last_error())  # type: ignore[attr-defined,unused-ignore]
    limits = ExtendedLimits()
    limits.BasicLimitInformation.LimitFlags = JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE
    if not kernel32.SetInformationJobObject(  # type: ignore[attr-defined]
        job, JOB_OBJECT_EXTENDED_LIMIT_INFORMATION, ctypes.byref(limits), ctypes.sizeof(limits)
    ):
        error = ctypes.get_last_error()  # type: ignore[attr-defined,unused-ignore]
        kernel32.CloseHandle(job)  # type: ignore[attr-defined]
        raise ctypes.WinError(error)  # type: ignore[attr-defined,unused-ignore]
    return int(job)


def _win32_assign(job: int, pid: int) -> None:
    import ctypes

    kernel32 = _kernel32()
    process = kernel32.OpenProcess(PROCESS_SET_QUOTA | PROCESS_TERMINATE, False, pid)  # type: ignore[attr-defined]
    if not process:
        return  # already gone: nothing to hold
    try:
        if not kernel32.AssignProcessToJobObject(job, process):  # type: ignore[attr-defined]
            raise ctypes.WinError(ctypes.get_last_error())  # type: ignore[attr-defined,unused-ignore]
    finally:
        kernel32.CloseHandle(process)  # type: ignore[attr-defined]


def _win32_active_processes(job: int) -> int:
    import ctypes
    from ctypes import wintypes

    class Accounting(ctypes.Structure):
        _fields_ = [
            ("TotalUserTime", ctypes.c_int64),
            ("TotalKernelTime", ctypes.c_int64),
            ("ThisPeriodTotalUserTime", ctypes.c_int64),
            ("ThisPeriodTotalKernelTime", ctypes.c_int64),
            ("TotalPageFaultCount", wintypes.DWORD),
            ("TotalProcesses", wintypes.DWORD),
            ("ActiveProcesses", wintypes.DWORD),
            ("TotalTerminatedProcesses", wintypes.DWORD),
        ]

    info = Accounting()
    ok = _kernel32().QueryInformationJobObject(  # type: ignore[attr-defined]
        job, JOB_OBJECT_BASIC_ACCOUNTING_INFORMATION, ctypes.byref(info), ctypes.sizeof(info), None
    )
    return int(info.ActiveProcesses) if ok else 0


def _win32_terminate(job: int) -> None:
    _kernel32().TerminateJobObject(job, 1)  # type: ignore[attr-defined]


def _win32_close(job: int) -> None:
    _kernel32().CloseHandle(job)  # type: ignore[attr-defined]
