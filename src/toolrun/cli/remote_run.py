"""``run``, ``exec`` and ``rerun`` with ``--remote``: the run starts on the daemon and its events
come back over SSE, printed as a local run prints them, ending with the same exit code.

Ctrl-C asks the daemon to cancel the run and keeps following it to its end, as a local Ctrl-C
cancels; a second Ctrl-C stops following (the run's cancellation goes on there).
"""

from __future__ import annotations

import sys
from typing import Any

from ..events import OUTPUT
from ..run_book import EXIT_CODES
from ..store import RunRecord
from .context import Context
from .errors import ExitCode
from .printer import PlainPrinter, summary
from .run_commands import exec_exit_code


def run(
    ctx: Context,
    name: str,
    params: dict[str, Any],
    *,
    as_json: bool,
    timeout: float | None,
) -> None:
    body: dict[str, Any] = {"toolchain": name, "params": params}
    if timeout is not None:
        body["timeout"] = timeout
    final = follow(ctx, ctx.remote_runs.start(body), as_json=as_json)
    raise ExitCode(EXIT_CODES.get(final.status, 1))


def rerun(ctx: Context, run_id: str, *, from_failed: bool, as_json: bool) -> None:
    started = ctx.remote_runs.rerun(run_id, from_failed=from_failed)
    final = follow(ctx, started, as_json=as_json)
    raise ExitCode(EXIT_CODES.get(final.status, 1))


def exec_(ctx: Context, spec: str, args: list[str], *, timeout: float | None) -> None:
    """The tool's output on our stdout and stderr, and its exit code as ours."""
    from ..versions import parse_spec

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
