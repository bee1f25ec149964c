"""Who owns a run: the process holding ``runs/<id>/owner.lock``.

The operating system drops the lock when its holder dies, however it dies, so a run whose
lock can be taken has lost its owner. Unlike a pid, a lock cannot be confused by pid reuse.
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
    if IS_WINDOWS:
        import msvcrt

        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)  # type: ignore[attr-defined]
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
    if IS_WINDOWS:
        import msvcrt

        os.lseek(fd, 0, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)  # type: ignore[attr-defined]
        return
    import fcntl

    fcntl.flock(fd, fcntl.LOCK_UN)
