"""``run``, ``exec`` and ``rerun`` with ``--remote``: the run starts on the daemon and its events
come back over SSE, shown as a local run is shown (the run view at a terminal, plain lines
otherwise), ending with the same exit code.

Ctrl-C asks the daemon to cancel the run and keeps following it to its end, as a local Ctrl-C
cancels; a second Ctrl-C stops following (the run's cancellation goes on there).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..history.store import RunRecord
from ..runs.events import OUTPUT, Event, EventLog
from ..runs.steps import EXIT_CODES
from .context import Context
from .errors import ExitCode, closed_stdout
from .printer import PlainPrinter, summary
from .run_commands import exec_exit_code, wants_tui

if TYPE_CHECKING:
    from .remote import RemoteRuns


def run(
    ctx: Context,
    name: str,
    params: dict[str, Any],
    *,
    as_json: bool,
    timeout: float | None,
    tui: bool | None = None,
    on: dict[str, str] | None = None,
    priority: int | None = None,
    locked: bool = False,
) -> None:
    """``tui`` None decides by the terminal, as a local run does."""
    body: dict[str, Any] = {"toolchain": name, "params": params}
    if timeout is not None:
        body["timeout"] = timeout
    if on:
        body["runs_on"] = on
    if priority is not None:
        body["priority"] = priority
    if locked:
        body["locked"] = True
    started = ctx.remote_runs.start(body)
    if tui or (tui is None and not as_json and wants_tui()):
        raise ExitCode(follow_in_tui(ctx, started))
    final = follow(ctx, started, as_json=as_json)
    raise ExitCode(EXIT_CODES.get(final.status, 1))


def rerun(
    ctx: Context, run_id: str, *, from_failed: bool, as_json: bool, tui: bool | None = None
) -> None:
    started = ctx.remote_runs.rerun(run_id, from_failed=from_failed)
    if tui or (tui is None and not as_json and wants_tui()):
        raise ExitCode(follow_in_tui(ctx, started))
    final = follow(ctx, started, as_json=as_json)
    raise ExitCode(EXIT_CODES.get(final.status, 1))


class DaemonRun:
    """A daemon's run as the run view shows it (a ``tui.run_app.LiveRun``).

    Its events come over SSE in a thread of their own and are copied into a local
    events.jsonl, which the view's log reads as it reads a local run's. The thread is a daemon
    thread: quitting the view never waits for a stream to end.
    """

    def __init__(self, remote: RemoteRuns, started: dict[str, Any], folder: Path) -> None:
        self.remote = remote
        self.id: str = started["id"]
        self.toolchain: str = started.get("toolchain", "")
        self.step_ids: list[str] = [step["id"] for step in started.get("steps", [])]
        self.needs: dict[str, tuple[str, ...]] = {}  # the daemon does not say
        self.log = EventLog(folder / "events.jsonl")
        self.log_path = self.log.path
        self._callbacks: list[Callable[[Event], None]] = []

    def on_event(self, callback: Callable[[Event], None]) -> None:
        self._callbacks.append(callback)

    async def wait(self) -> RunRecord:
        import asyncio
        import threading

        loop = asyncio.get_running_loop()
        ended: asyncio.Future[None] = loop.create_future()

        def deliver(event: Event) -> None:
            for callback in self._callbacks:
                callback(event)

        def end(error: BaseException | None) -> None:
            if ended.done():
                return
            if error is None:
                ended.set_result(None)
            else:
                ended.set_exception(error)

        def follow() -> None:
            try:
                for event in self.remote.events(self.id):
                    self.log.append(event)
                    self.log.flush()
                    loop.call_soon_threadsafe(deliver, event)
            except Exception as exc:  # ours or httpx's: the view shows it, the CLI reports it
                loop.call_soon_threadsafe(end, exc)
            else:
                loop.call_soon_threadsafe(end, None)

        threading.Thread(target=follow, name=f"follow {self.id}", daemon=True).start()
        await ended
        return await asyncio.to_thread(self.remote.require_run, self.id)

    def cancel(self) -> None:
        self.remote.cancel(self.id)

    def control(self, wanted: int) -> None:
        self.remote.control(self.id, wanted)


def follow_in_tui(ctx: Context, started: dict[str, Any]) -> int:
    """The run view on a daemon's run, then its summary in the scrollback; ``r`` reruns it."""
    import tempfile

    from ..tui.run_app import RunApp

    inline = sys.platform != "win32" and sys.stdout.isatty()
    remote = ctx.remote_runs
    while True:
        with tempfile.TemporaryDirectory(prefix="toolrun-") as folder:
            live = DaemonRun(remote, started, Path(folder))
            app = RunApp(live)
            code = app.run(inline=inline)
            live.log.close()
        if app.error is not None:
            raise app.error
        final = remote.require_run(live.id)
        summary(final, remote.steps(final.id))
        if not app.rerun_requested:
            return code if code is not None else EXIT_CODES.get(final.status, 1)
        started = remote.rerun(final.id, from_failed=False)


def exec_(ctx: Context, spec: str, args: list[str], *, timeout: float | None) -> None:
    """The tool's output on our stdout and stderr, and its exit code as ours."""
    from ..tools.versions import parse_spec

    parsed = parse_spec(spec)
    body: dict[str, Any] = {"cmd": parsed.name, "args": args}
    if "@" in spec or any(op in spec for op in "=<>^~"):
        body["version"] = spec[len(parsed.name) :].lstrip("@")
    if timeout is not None:
        body["timeout"] = timeout
    remote = ctx.remote_runs
    started = remote.start(body)
    streams = {"stdout": sys.stdout, "stderr": sys.stderr}

    def passthrough(kind: str, data: dict[str, Any]) -> None:
        if kind == OUTPUT:
            target = streams.get(data.get("stream", "stdout"), sys.stdout)
            target.write("".join(line + "\n" for line in data.get("lines", [])))
            target.flush()

    final = _follow_events(ctx, started["id"], passthrough)
    raise ExitCode(exec_exit_code(final, remote.steps(final.id)[0]))


def follow(ctx: Context, started: dict[str, Any], *, as_json: bool) -> RunRecord:
    """Print a remote run's events as they come, then its summary; returns its final record."""
    step_ids = [step["id"] for step in started.get("steps", [])]
    if as_json:
        final = _follow_events(ctx, started["id"], None, raw=True)
        return final
    printer = PlainPrinter(prefix=len(step_ids) > 1)
    printer.set_steps(step_ids)
    final = _follow_events(ctx, started["id"], None, printer=printer)
    printer.flush()
    summary(final, ctx.remote_runs.steps(final.id))
    return final


def _follow_events(
    ctx: Context,
    run_id: str,
    on_data: Any,
    *,
    printer: PlainPrinter | None = None,
    raw: bool = False,
) -> RunRecord:
    remote = ctx.remote_runs
    cancelled = False
    seen = 0
    while True:
        try:
            for event in remote.events(run_id, after=seen):
                seen = event.seq
                if raw:
                    sys.stdout.write(event.to_json() + "\n")
                    sys.stdout.flush()
                elif printer is not None:
                    printer(event)
                else:
                    on_data(event.kind, event.data)
            break
        except BrokenPipeError:  # `toolrun --remote URL run X | head`: as a local run does
            remote.cancel(run_id)
            raise closed_stdout() from None
        except KeyboardInterrupt:
            if cancelled:
                print(f"\ntoolrun: stopped following run {run_id}", file=sys.stderr)
                raise ExitCode(130) from None
            cancelled = True
            print(
                f"\ntoolrun: cancelling run {run_id} on the daemon (Ctrl-C again to stop "
                "following)",
                file=sys.stderr,
                flush=True,
            )
            remote.cancel(run_id)
    return remote.require_run(run_id)
