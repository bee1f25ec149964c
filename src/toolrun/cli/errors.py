"""One place where every ToolrunError becomes a message and an exit code."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator

from ..errors import StorageError, ToolrunError

EXIT_CODES = {
    0: "success",
    1: "failure (a run failed, or an unexpected error)",
    2: "usage: a bad argument, option or tool spec",
    3: "configuration: config.toml, a manifest, a registry's layout or reachability",
    4: "not found: no such tool, version or run",
    5: "integrity: a sha256 that does not match, an unsafe archive",
    6: "storage: the data dir cannot be written (read-only, full, permissions)",
}


class ExitCode(Exception):
    """Raised by commands that have already printed their outcome."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


def closed_stdout() -> ExitCode:
    """The exit for a command whose stdout's reader went away (``toolrun run X | head``): as a
    pipeline's writer, 128 + SIGPIPE and no message. Anything more toolrun would write there
    (a summary, Python's last flush) goes nowhere instead of meeting the broken pipe again."""
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return ExitCode(141)


def report(error: ToolrunError) -> int:
    if os.environ.get("TOOLRUN_DEBUG") == "1":
        import traceback

        traceback.print_exception(error, file=sys.stderr)
    lines = error.message.splitlines() or [""]
    print(f"toolrun: error: {lines[0]}", file=sys.stderr)
    for line in lines[1:]:
        print(f"  {line}", file=sys.stderr)
    if error.hint:
        print(f"  hint: {error.hint}", file=sys.stderr)
    return error.exit_code


@contextlib.contextmanager
def handled() -> Iterator[list[int]]:
    """Yield a one-item list holding the exit code set by whatever went wrong inside."""
    outcome = [0]
    try:
        yield outcome
    except ToolrunError as error:
        outcome[0] = report(error)
    except ExitCode as exit_code:
        outcome[0] = exit_code.code
    except BrokenPipeError:  # `toolrun history --json | head -1`
        outcome[0] = closed_stdout().code
    except OSError as error:
        # What the file system or the system refused and no command foresaw (a full disk, a
        # name too long, a folder where a file should be): the environment, not a bug, so a
        # message and the storage code rather than a traceback, as pip does.
        outcome[0] = report(StorageError(_describe_os_error(error)))
    except KeyboardInterrupt:
        print("toolrun: interrupted", file=sys.stderr)
        outcome[0] = 130


def _describe_os_error(error: OSError) -> str:
    reason = error.strerror or str(error) or type(error).__name__
    if error.filename is None:
        return reason
    name = str(error.filename)
    shown = f"{name[:80]}...{name[-40:]}" if len(name) > 130 else name
    return f"{shown}: {reason}"
