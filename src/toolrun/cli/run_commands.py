"""``toolrun run``, ``exec`` and ``rerun``: start a run in this process and show it live."""

from __future__ import annotations

import signal
import sys
from collections.abc import Callable

from ..errors import UsageError
from ..history.store import RunRecord, StepRecord
from ..runs.engine import RunHandle, RunOptions, can_execute_here, exec_toolchain
from ..runs.events import Event
from ..runs.steps import EXIT_CODES
from ..selectors import parse_labels, selector_of_labels
from ..toolchains.model import parse_assignments
from ..units import parse_duration
from .context import Context
from .errors import ExitCode, closed_stdout
from .printer import PlainPrinter, summary

# `typing` costs milliseconds at start-up; annotations alone never need it at run time.
TYPE_CHECKING = False
if TYPE_CHECKING:
    import asyncio

    from ..runs.engine import Engine


def run(
    ctx: Context,
    name: str,
    assignments: list[str],
    *,
    as_json: bool = False,
    timeout: str | None = None,
    pre: bool = False,
    tui: bool | None = None,
    on: list[str] | None = None,
    priority: str | None = None,
    locked: bool | None = None,
) -> None:
    """``tui`` None decides by the terminal: see ``wants_tui``; ``locked`` None by config's
    ``locked``."""
    labels = parse_labels(on or [], "--on")
    rank = _priority(priority)
    if locked is None:
        locked = bool(ctx.config.get("locked"))
    if ctx.remote:
        from . import remote_run

        params = parse_assignments(assignments)
        remote_run.run(
            ctx,
            name,
            params,
            as_json=as_json,
            timeout=_timeout(timeout),
            tui=tui,
            on=labels,
            priority=rank,
            locked=locked,
        )
        return
    toolchain = ctx.load_toolchain(name)
    lock = None
    if locked:
        from ..tools.lockfile import lock_for_run

        lock = lock_for_run(toolchain.path, toolchain.sha256)
    options = RunOptions(
        timeout=_timeout(timeout),
        requester=_user(),
        pre=pre,
        runs_on=selector_of_labels(labels),
        priority=rank,
        lock=lock,
        caller_env=passed_env(toolchain.pass_env),
    )
    handle = ctx.engine.prepare(toolchain, parse_assignments(assignments), options)
    if tui or (tui is None and not as_json and wants_tui()):
        raise ExitCode(run_in_tui(handle, ctx))
    final = run_live(handle, ctx, as_json=as_json)
    raise ExitCode(EXIT_CODES[final.status])


def passed_env(patterns: tuple[str, ...]) -> dict[str, str]:
    """The variables of this command's own environment that the toolchain's ``pass_env``
    lets reach its steps (a local run: the caller is the user at this machine)."""
    if not patterns:
        return {}
    import os

    from ..policy import env_accepted

    return {name: value for name, value in os.environ.items() if env_accepted(name, patterns)}


def wants_tui() -> bool:
    """The TUI only for a person at a terminal: both ends a tty, a capable TERM, not in CI."""
    import os

    return (
        sys.stdin.isatty()
        and sys.stdout.isatty()
        and os.environ.get("TERM", "") not in ("", "dumb")
        and "CI" not in os.environ
    )


def run_in_tui(handle: RunHandle, ctx: Context) -> int:
    """Show the run in the Textual app, then leave its summary in the scrollback.

    ``r`` in the app, once the run has ended, runs it again: the app closes, the run is
    prepared like ``toolrun rerun`` and a new app shows it.
    """
    from ..tui.run_app import EngineRun, RunApp

    # Inline (below the prompt, in the scrollback) where Textual supports it: not on Windows.
    inline = sys.platform != "win32" and sys.stdout.isatty()
    while True:
        app = RunApp(EngineRun(ctx.engine, handle))
        code = app.run(inline=inline)
        final = ctx.store.require_run(handle.id)
        summary(final, ctx.store.steps(final.id))
        if not app.rerun_requested:
            return code if code is not None else EXIT_CODES.get(final.status, 1)
        handle = rerun_handle(ctx, final.id)


def exec_(ctx: Context, spec: str, args: list[str], *, timeout: str | None = None) -> None:
    """One tool, its output passed through untouched, its exit code returned as ours."""
    if ctx.remote:
        from . import remote_run

        remote_run.exec_(ctx, spec, args, timeout=_timeout(timeout))
        return
    from ..executors.containment import get_ready

    get_ready()  # the slow part of making the tool's cgroup, while the run is recorded
    toolchain = exec_toolchain(spec, args)
    options = RunOptions(timeout=_timeout(timeout), requester=_user())
    handle = ctx.engine.prepare(toolchain, {}, options)
    streams = {"stdout": sys.stdout, "stderr": sys.stderr}
    encoding = handle.steps[0].tool.manifest.encoding if handle.steps[0].tool else "utf-8"
    recoders = {name: terminal_recoder(stream, encoding) for name, stream in streams.items()}

    def passthrough(stream: str, data: bytes) -> None:
        recode = recoders[stream]
        target = streams[stream].buffer
        target.write(recode(data) if recode else data)
        target.flush()

    output = PipeOutput(handle)
    handle.on_raw = output.guard(passthrough)
    final = _execute(ctx.engine, handle, lambda event: None)
    output.end()
    if handle.storage_error is not None:
        raise handle.storage_error
    raise ExitCode(exec_exit_code(final, ctx.store.steps(final.id)[0]))


def terminal_recoder(stream: object, encoding: str) -> Callable[[bytes], bytes] | None:
    """For a terminal whose encoding is not the tool's (a GBK tool, a UTF-8 terminal): the
    tool's bytes as the terminal reads them. None for a pipe or a file, which get the
    tool's bytes as they are, and where the encodings agree."""
    import codecs

    isatty = getattr(stream, "isatty", None)
    wanted = getattr(stream, "encoding", None) or "utf-8"
    if not (callable(isatty) and isatty()):
        return None
    try:
        if codecs.lookup(wanted).name == codecs.lookup(encoding).name:
            return None
    except LookupError:
        return None
    decoder = codecs.getincrementaldecoder(encoding)(errors="replace")
    return lambda data: decoder.decode(data).encode(wanted, errors="replace")


def exec_exit_code(final: RunRecord, step: StepRecord) -> int:
    """``exec`` exits as its tool did; 127 when it could not start, and as a run when stopped."""
    if final.status in ("cancelled", "timed_out"):
        return EXIT_CODES[final.status]
    if step.exit_code is None:
        print(f"toolrun: error: {step.error} (run {final.id})", file=sys.stderr)
        return 127
    # A tool killed by a signal exits like a shell reports it: 128 + the signal number.
    return step.exit_code if step.exit_code >= 0 else 128 - step.exit_code


def rerun(
    ctx: Context,
    run_id: str,
    *,
    from_failed: bool = False,
    as_json: bool = False,
    tui: bool | None = None,
) -> None:
    """Run a past run again with the same toolchain text, params and tool versions."""
    from .history_commands import newest

    run_id = newest(ctx, run_id)
    if ctx.remote:
        from . import remote_run

        remote_run.rerun(ctx, run_id, from_failed=from_failed, as_json=as_json, tui=tui)
        return
    handle = rerun_handle(ctx, run_id, from_failed=from_failed)
    if tui or (tui is None and not as_json and wants_tui()):
        raise ExitCode(run_in_tui(handle, ctx))
    final = run_live(handle, ctx, as_json=as_json)
    raise ExitCode(EXIT_CODES[final.status])


def rerun_handle(ctx: Context, run_id: str, *, from_failed: bool = False) -> RunHandle:
    from ..records import replace
    from ..runs.reruns import plan_rerun

    toolchain, params, options = plan_rerun(
        ctx.store, run_id, from_failed=from_failed, toolchain_dirs=ctx.toolchain_dirs()
    )
    return ctx.engine.prepare(toolchain, params, replace(options, requester=_user()))


def run_live(handle: RunHandle, ctx: Context, *, as_json: bool) -> RunRecord:
    for tool in ctx.resolver.newly_installed:
        print(f"installed {tool.name} {tool.version} from {tool.source}", file=sys.stderr)
    for message in ctx.resolver.warnings:
        print(f"toolrun: warning: {message}", file=sys.stderr)
    output = PipeOutput(handle)
    if as_json:

        def emit(event: Event) -> None:
            sys.stdout.write(event.to_json() + "\n")

        final = _execute(ctx.engine, handle, output.guard(emit))
        output.guard(sys.stdout.flush)()
    else:
        printer = PlainPrinter(prefix=len(handle.steps) > 1)
        printer.set_steps([p.id for p in handle.steps])
        final = _execute(ctx.engine, handle, output.guard(printer))
        output.guard(printer.flush)()
    output.end()
    if not as_json:
        summary(final, ctx.store.steps(final.id))
    if handle.storage_error is not None:
        raise handle.storage_error  # after the summary, so the error is the last word
    return final


class PipeOutput:
    """toolrun's stdout as a run writes to it. When its reader goes away (``toolrun run X |
    head``), the run is cancelled, its tools ended, as the rest of a pipeline expects, rather
    than toolrun failing with a broken pipe and leaving the run unrecorded."""

    def __init__(self, handle: RunHandle) -> None:
        self.handle = handle
        self.closed = False

    def guard(self, write: Callable[..., None]) -> Callable[..., None]:
        def guarded(*args: object) -> None:
            if self.closed:
                return
            try:
                write(*args)
            except BrokenPipeError:
                self.closed = True
                self.handle.cancel()

        return guarded

    def end(self) -> None:
        """After the run: exit as a pipeline's writer does once its reader is gone."""
        if self.closed:
            raise closed_stdout()


def _execute(engine: Engine, handle: RunHandle, on_event: Callable[[Event], None]) -> RunRecord:
    """Run here and now; Ctrl-C once cancels cleanly, twice forces."""
    handle.channel.on_event(on_event)
    interrupted = _interrupt_handler(handle)
    if can_execute_here(handle):
        # One step needs no event loop, and not importing asyncio keeps `exec` quick.
        previous = signal.signal(signal.SIGINT, lambda *_: interrupted())
        try:
            return engine.execute_here(handle)
        finally:
            signal.signal(signal.SIGINT, previous)
    import asyncio

    async def main() -> RunRecord:
        _install_interrupt_handler(asyncio.get_running_loop(), interrupted)
        return await engine.execute(handle)

    return asyncio.run(main())


def _interrupt_handler(handle: RunHandle) -> Callable[[], None]:
    presses = 0

    def interrupted() -> None:
        nonlocal presses
        presses += 1
        if presses == 1:
            print(
                "\ntoolrun: cancelling the run (Ctrl-C again to force)", file=sys.stderr, flush=True
            )
            handle.cancel()
        else:
            handle.cancel(force=True)

    return interrupted


def _install_interrupt_handler(
    loop: asyncio.AbstractEventLoop, callback: Callable[[], None]
) -> None:
    try:
        loop.add_signal_handler(signal.SIGINT, callback)
    except (NotImplementedError, RuntimeError):
        # Windows event loops have no add_signal_handler: a plain handler hands over instead.
        signal.signal(signal.SIGINT, lambda *_: loop.call_soon_threadsafe(callback))


def _timeout(text: str | None) -> float | None:
    if text is None:
        return None
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise UsageError(f"--timeout must be {exc}, not {text!r}") from None


def _priority(text: str | None) -> int | None:
    if text is None:
        return None
    from ..priorities import PriorityError, parse_priority

    try:
        return parse_priority(text, text=True)
    except PriorityError as exc:
        raise UsageError(f"--{exc.message}") from None


def _user() -> str:
    """Who asked, for the history's requester column."""
    import os

    name = os.environ.get("USER") or os.environ.get("USERNAME")
    if name:
        return name
    import getpass

    try:
        return getpass.getuser()
    except Exception:  # no user name on this system (a container without a passwd entry)
        return ""
