"""``python -m toolrun`` and the ``toolrun`` console script."""

from __future__ import annotations

import gc
import sys


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    try:
        code = _dispatch(args)
    finally:
        # At exit Python runs its collector over every object toolrun made, moments before the
        # process ends anyway: 20 ms of `toolrun exec`'s 100 ms budget here. Frozen, they are
        # skipped. Nothing depends on that last collection: what toolrun writes, it closes.
        gc.freeze()
    if argv is None and args[:1] == ["exec"]:
        _end_now(code)
    return code


def _end_now(code: int) -> None:
    """End the process as the tool's own would, without Python's teardown.

    Taking the interpreter apart costs another 6 ms after an exec, for nothing: the run is
    recorded and closed by now (the store commits each change; the event log is closed when
    the run finishes), exec starts no threads that outlive the run, and registers no atexit
    work. Only what is still buffered for the terminal needs writing out.
    """
    import os

    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            code = code or 120  # what Python exits with when its own final flush fails
    os._exit(code)


def _undecodable(args: list[str]) -> str | None:
    """What to say of an argument that is not UTF-8 text (Python hands such bytes on as lone
    surrogates): toolrun records every argument as text, and would fail doing so later."""
    for index, arg in enumerate(args, 1):
        try:
            arg.encode("utf-8")
        except UnicodeEncodeError as exc:
            byte = ord(arg[exc.start]) & 0xFF
            return (
                f"toolrun: error: argument {index} is not UTF-8 text (byte 0x{byte:02x} at "
                f"character {exc.start + 1}); nothing was run"
            )
    return None


def _dispatch(args: list[str]) -> int:
    problem = _undecodable(args)
    if problem is not None:
        print(problem, file=sys.stderr)
        return 2
    # The seed's -v/--version answers before anything heavy is imported.
    if args in (["-v"], ["--version"]):
        from . import __version__

        print(f"toolrun {__version__}")
        return 0
    if len(args) == 2 and args[0] in ("-v", "--version") and args[1] == "--verbose":
        from .cli.about import print_about

        return print_about()
    import os

    if "_TOOLRUN_COMPLETE" in os.environ:  # a shell asking what to complete
        from .cli.quick_complete import try_quick_complete

        answered = try_quick_complete(os.environ)
        if answered is not None:
            return answered
    from .cli.fast import try_fast_path

    code = try_fast_path(args)
    if code is not None:
        return code
    from .cli.app import run_app

    return run_app(args)


if __name__ == "__main__":
    sys.exit(main())
