"""Who owns a run: the process holding ``runs/<id>/owner.lock``.

The operating system drops the lock when its holder dies, however it dies, so a run whose
lock can be taken has lost its owner. Unlike a pid, a lock cannot be confused by pid reuse.

On POSIX a process's runs share one lock: the first run's ``owner.lock`` stays locked for as
long as the process lives, and every later run's ``owner.lock`` is a hard link to it. Probing
any link probes that one lock. A link costs no new inode: on the ext4 of the machine toolrun
is measured on, creating a file takes 0.1 to 1 ms of CPU and a link 0.014 ms, and the daemon
starts hundreds of runs a second. Windows keeps a lock per run, released when the run ends,
because a file held open there cannot be deleted, and pruning a finished run deletes its
folder.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

IS_WINDOWS = sys.platform.startswith("win")


class OwnerLock:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def try_acquire(self) -> bool:
        """Take the lock without waiting; False when another open handle holds it."""
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        if _lock(fd):
            self._fd = fd
            return True
        os.close(fd)
        return False

    def release(self) -> None:
        if self._fd is not None:
            _unlock(self._fd)
            os.close(self._fd)
            self._fd = None


class RunOwnership:
    """The owner locks of the runs this process starts (see the module's docstring)."""

    def __init__(self) -> None:
        self._source: Path | None = None
        self._pid = 0
        self._held: list[OwnerLock] = []  # every lock some run of ours may still link to

    def claim(self, path: Path) -> OwnerLock:
        """Make ``path`` (in a new run folder) locked for as long as its run is ours; the
        returned lock's ``release`` ends that at the run's end."""
        if self._source is not None and self._pid == os.getpid():
            try:
                os.link(self._source, path)
                return OwnerLock(path)  # holds nothing: releasing it leaves the shared lock
            except OSError:
                pass  # the first run was pruned, or this file system has no hard links
        lock = OwnerLock(path)
        if not lock.try_acquire():
            raise OSError(f"{path} is locked by another process")
        if IS_WINDOWS:
            return lock
        if self._pid != os.getpid():
            self._held = []  # a forked child holds none of its parent's locks
        self._source, self._pid = path, os.getpid()
        self._held.append(lock)
        return OwnerLock(path)


def owner_alive(path: Path) -> bool:
    """True while some process (this one included) holds the lock at ``path``."""
    if not path.exists():
        return False
    probe = OwnerLock(path)
    if probe.try_acquire():
        probe.release()
        return False
    return True


def _lock(fd: int) -> bool:
    if sys.platform == "win32":
        import msvcrt

        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True
    import fcntl

    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False
    return True


def _unlock(fd: int) -> None:
    if sys.platform == "win32":
        import msvcrt

        os.lseek(fd, 0, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)
        return
    import fcntl

    fcntl.flock(fd, fcntl.LOCK_UN)
