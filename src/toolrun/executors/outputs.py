"""The outputs a tool hands to later steps: ``KEY=VALUE`` lines in the file ``$TOOLRUN_OUTPUT``
names, read where the tool ran once it has ended."""

from __future__ import annotations

import os
import stat
from pathlib import Path

OUTPUTS_LIMIT = 1024 * 1024  # bytes of $TOOLRUN_OUTPUT read into the history (GitHub's too)


def read_outputs(path: Path) -> tuple[dict[str, str], str | None]:
    """``KEY=VALUE`` lines a step wrote to ``$TOOLRUN_OUTPUT``, and what was wrong with the
    file if something was. The step makes the file (or not), so it may have made anything
    there: only a regular file is read (a FIFO would block the run, a link could point
    anywhere), and only its first ``OUTPUTS_LIMIT`` bytes."""
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        return {}, None
    except OSError:
        return {}, f"{path}: not a file, ignored"  # a symbolic link (ELOOP) or worse
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        return {}, f"{path}: not a file, ignored"
    with os.fdopen(fd, "rb") as file:
        data = file.read(OUTPUTS_LIMIT + 1)
    problem = None
    if len(data) > OUTPUTS_LIMIT:
        data = data[: data.rfind(b"\n", 0, OUTPUTS_LIMIT) + 1]
        problem = f"{path}: only the lines in its first {OUTPUTS_LIMIT // 1024} KiB were read"
    outputs: dict[str, str] = {}
    for line in data.decode("utf-8", errors="replace").splitlines():
        key, sep, value = line.partition("=")
        if sep and key.strip() and not key.lstrip().startswith("#"):
            outputs[key.strip()] = value
    return outputs, problem
