"""``toolrun history``, ``show``, ``logs``, ``result``, ``cancel``: the runs kept in the store."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from pathlib import Path

from ..errors import NotFoundError, StorageError, UsageError
from ..history.endings import with_ending
from ..history.store import RUN_STATES, HistoryQuery, RunRecord
from ..records import replace
from ..runs.event_text import EndingNote, display_lines, format_duration, shown_value
from ..runs.events import OUTPUT, RUN_FINISHED, Event, follow_file, read_events
from ..runs.steps import EXIT_CODES
from ..services import mark_interrupted
from ..units import parse_age, parse_when
from .context import Context
from .errors import ExitCode
from .output import info, print_json, print_table
from .run_commands import wants_tui

MAX_COUNT = 2**53  # runs, pages: past any store, within SQLite's integers


def history(
    ctx: Context,
    *,
    status: str | None = None,
    toolchain: str | None = None,
    worker: str | None = None,
    since: str | None = None,
    until: str | None = None,
    limit: int = 20,
    page: int = 1,
    as_json: bool = False,
    tui: bool | None = None,
) -> None:
    """``tui`` None opens the browser for a person at a terminal; see ``wants_tui``."""
    if status is not None and status not in RUN_STATES:
        raise UsageError(f"--status must be one of {', '.join(RUN_STATES)}, not {status!r}")
    if limit < 1 or page < 1:
        raise UsageError("--limit and --page start at 1")
    if limit > MAX_COUNT or page > MAX_COUNT:
        raise UsageError(f"--limit and --page go up to {MAX_COUNT}")
    query = HistoryQuery(
        status=status,
        toolchain=toolchain,
        worker=worker,
        since=parse_when(since, "--since") if since else None,
        until=parse_when(until, "--until") if until else None,
        limit=limit,
        offset=(page - 1) * limit,
    )
    if not ctx.remote and (tui or (tui is None and not as_json and wants_tui())):
        from ..tui.history_app import HistoryApp

        app = HistoryApp(ctx.store, query)
        app.run()
        if app.rerun_id is not None:
            from .run_commands import rerun

            rerun(ctx, app.rerun_id, tui=True)
        return
    runs = ctx.runs.list_runs(query)
    if not runs and not ctx.remote and ctx.store.count_runs(query) == 0:
        lost_index(ctx)
    if as_json:
        from ..json_views import run_json  # msgspec: 28 ms, for --json only

        print_json([run_json(run) for run in runs])
        return
    if not runs:
        filtered = status or toolchain or worker or since or until
        if page > 1:
            total = None if ctx.remote else ctx.store.count_runs(replace(query, offset=0))
            known = f" ({total} in all, {-(-total // limit)} page(s) of {limit})" if total else ""
            info(f"no runs on page {page}{known}")
        else:
            info("no runs" + (" match" if filtered else " yet"))
        return
    print_table(
        ["id", "toolchain", "status", "started", "duration", "origin", "requester"],
        [
            [
                run.id,
                run.toolchain,
                run.status,
                _local(run.started_at or run.created_at),
                format_duration(run.duration),
                run.origin,
                run.requester,
            ]
            for run in runs
        ],
    )


def lost_index(ctx: Context) -> None:
    """An index that lists no run beside run folders has lost them: say so, and the fix."""
    if ctx.store.has_run_folders():
        print(
            f"toolrun: warning: {ctx.store.db_path} lists no runs, but {ctx.store.runs_dir} "
            "holds run folders; `toolrun history repair` rebuilds the index from them",
            file=sys.stderr,
        )


def newest(ctx: Context, run_id: str) -> str:
    """``last`` names the newest run, so a command can be pasted without looking one up."""
    if run_id != "last":
        return run_id
    runs = ctx.runs.list_runs(HistoryQuery(limit=1))
    if not runs:
        raise NotFoundError("no runs yet: `last` names none")
    return runs[0].id


def show(ctx: Context, run_id: str, *, as_json: bool = False) -> None:
    run_id = newest(ctx, run_id)
    try:
        run = ctx.runs.require_run(run_id)
    except NotFoundError:
        if not ctx.remote and (ctx.store.runs_dir / run_id / "events.jsonl").is_file():
            raise NotFoundError(
                f"run {run_id} has a folder but is not in {ctx.store.db_path}",
                hint="toolrun history repair rebuilds the index from the run folders",
            ) from None
        raise
    steps = ctx.runs.steps(run_id)
    if as_json:
        from ..json_views import run_json  # msgspec: 28 ms, for --json only

        print_json(run_json(run, steps))
        return
    info(f"run        {run.id}")
    info(f"toolchain  {run.toolchain} (sha256 {run.toolchain_sha256})")
    if run.lock_sha256:
        info(f"locked     by its lock file (sha256 {run.lock_sha256})")
    info(f"status     {run.status}" + (f" ({run.error})" if run.error else ""))
    info(f"origin     {run.origin}" + (f" by {run.requester}" if run.requester else ""))
    info(f"created    {_local(run.created_at)}")
    info(f"duration   {format_duration(run.duration)}")
    if run.rerun_of:
        info(f"rerun of   {run.rerun_of}")
    if run.priority:
        from ..priorities import priority_name

        info(f"priority   {priority_name(run.priority)}")
    if run.params:
        info("params")
        for key, value in run.params.items():
            info(f"  {key} = {shown_value(value)}")
    info("steps")
    print_table(
        ["  step", "tool", "version", "status", "tries", "time", "exit", "sha256"],
        [
            [
                f"  {s.step_id}",
                s.tool,
                s.version or "-",
                s.status + (" (allowed)" if s.allowed_failure else ""),
                str(s.attempts),
                format_duration(s.duration) if s.started_at else "-",
                "-" if s.exit_code is None else str(s.exit_code),
                (s.sha256 or "-")[:16],
            ]
            for s in steps
        ],
    )
    for step in steps:
        if step.outputs:
            info(f"outputs of {step.step_id}")
            for key, value in step.outputs.items():
                info(f"  {key}={value}")
        if step.error and step.status != "succeeded":
            info(f"{step.step_id}: {step.error}")
    if ctx.remote:
        info(f"daemon     {ctx.remote_runs.url}/api/v1/runs/{run.id}")
    else:
        info(f"folder     {ctx.store.run_dir(run.id)}")


def logs(
    ctx: Context,
    run_id: str,
    *,
    follow: bool = False,
    step: str | None = None,
    fmt: str = "text",
) -> None:
    if fmt not in ("text", "json"):
        raise UsageError(f"--format must be text or json, not {fmt!r}")
    run_id = newest(ctx, run_id)
    run = ctx.runs.require_run(run_id)
    steps = [s.step_id for s in ctx.runs.steps(run_id)]
    if step is not None and step not in steps:
        raise UsageError(f"run {run_id} has no step {step!r} (steps: {', '.join(steps)})")
    prefix = len(steps) > 1 and step is None
    out = sys.stdout
    for event in _events(ctx, run, follow=follow):
        if step is not None and event.step != step:
            continue
        if fmt == "json":
            out.write(event.to_json() + "\n")
        else:
            out.writelines(line + "\n" for line in display_lines(event, prefix=prefix))
        if follow:
            out.flush()


def result(ctx: Context, run_id: str) -> None:
    """The seed's `result`: the run's output, and an exit code from its status."""
    run_id = newest(ctx, run_id)
    run = ctx.runs.require_run(run_id)
    if run.is_active:
        print(f"toolrun: run {run_id} is still {run.status}", file=sys.stderr)
        raise ExitCode(75)  # EX_TEMPFAIL: the seed's HTTP 202, "still running"
    prefix = len(ctx.runs.steps(run_id)) > 1
    note = EndingNote(steps=prefix)
    out = sys.stdout
    last = None
    for event in _events(ctx, run, follow=False):
        if event.kind == OUTPUT:
            out.writelines(line + "\n" for line in display_lines(event, prefix=prefix))
        last = note.see(event) or last
    out.flush()
    if last:
        print(last, file=sys.stderr)  # what toolrun knows went wrong; stdout is the tool's
    raise ExitCode(EXIT_CODES.get(run.status, 1))


def cancel(ctx: Context, run_id: str) -> None:
    run_id = newest(ctx, run_id)
    run = ctx.runs.require_run(run_id)
    if not run.is_active:
        raise UsageError(f"run {run_id} already ended: {run.status}")
    if ctx.remote:
        ctx.remote_runs.cancel(run_id)
        info(f"cancel requested for run {run_id} on {ctx.remote_runs.url}")
        return
    ctx.store.request_cancel(run_id)
    info(f"cancel requested for run {run_id}; its toolrun process will stop it")


def control(ctx: Context, run_id: str, *, wanted: int) -> None:
    """``toolrun pause [--now]`` (1, 2) and ``toolrun resume`` (0)."""
    import time

    run_id = newest(ctx, run_id)
    run = ctx.runs.require_run(run_id)
    if not run.is_active:
        raise UsageError(f"run {run_id} already ended: {run.status}")
    verb = "resume" if wanted == 0 else "pause"
    if ctx.remote:
        ctx.remote_runs.control(run_id, wanted)
        info(f"asked run {run_id} on {ctx.remote_runs.url} to {verb}")
        return
    if wanted == 2:
        from ..executors.containment import freeze_refusal

        refusal = freeze_refusal()
        if refusal:
            raise UsageError(f"pause --now: {refusal}")
    ctx.store.request_control(run_id, wanted)

    def done(status: str) -> bool:
        return status == "paused" if wanted else status != "paused"

    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:  # its owner looks twice a second
        run = ctx.store.require_run(run_id)
        if done(run.status) or not run.is_active:
            break
        time.sleep(0.05)
    if wanted == 0 and done(run.status):
        ended = "" if run.is_active else f", and has ended since: {run.status}"
        info(f"run {run_id} resumed{ended}")
    elif done(run.status):
        if wanted == 1:
            info(f"run {run_id} paused: no further step starts")
        elif _paused_frozen(ctx.store.run_dir(run_id) / "events.jsonl"):
            info(f"run {run_id} paused, its steps frozen")
        else:  # a step that cannot be frozen (a WASM tool's, a worker's): the run said why
            info(f"run {run_id} paused; its running steps could not be frozen (toolrun logs)")
    elif not run.is_active:
        info(f"run {run_id} ended meanwhile: {run.status}")
    else:
        info(f"asked run {run_id} to {verb}; its toolrun process has not answered yet")


def _paused_frozen(events: Path) -> bool:
    """Whether the run's latest pause froze its steps, from the end of its log."""
    import json

    try:
        with events.open("rb") as file:
            file.seek(0, 2)
            file.seek(max(0, file.tell() - 65536))
            tail = file.read().splitlines()
    except OSError:
        return False
    for line in reversed(tail):
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if isinstance(event, dict) and event.get("kind") == "run_paused":
            return bool(event.get("now"))
    return False


def delete(ctx: Context, run_ids: list[str]) -> None:
    _local_only(ctx, "history delete")
    for run_id in run_ids:
        ctx.store.delete_run(run_id)
        info(f"deleted run {run_id}")


def prune(
    ctx: Context,
    *,
    older_than: str | None,
    keep: int | None,
    max_size: str | None,
    dry_run: bool = False,
) -> None:
    from ..units import parse_size

    _local_only(ctx, "history prune")
    if older_than is None and keep is None and max_size is None:
        raise UsageError("say what to prune: --older-than 30d, --keep 1000 and/or --max-size 5GB")
    try:
        age = parse_age(older_than) if older_than else None
    except ValueError as exc:
        raise UsageError(f"--older-than: {exc}") from None
    try:
        size = parse_size(max_size) if max_size else None
    except ValueError as exc:
        raise UsageError(f"--max-size must be {exc}, not {max_size!r}") from None
    if keep is not None and not 0 <= keep <= MAX_COUNT:
        raise UsageError(f"--keep must be 0 to {MAX_COUNT}")
    removed = ctx.store.prune(older_than=age, keep=keep, max_size=size, dry_run=dry_run)
    verb = "would delete" if dry_run else "deleted"
    info(f"{verb} {len(removed)} run(s)")


def _events(ctx: Context, run: RunRecord, *, follow: bool) -> Iterator[Event]:
    if ctx.remote:
        yield from ctx.remote_runs.events(run.id, follow=follow and run.is_active)
        return
    path = ctx.store.run_dir(run.id) / "events.jsonl"
    if not path.is_file() and not run.is_active:
        raise StorageError(f"run {run.id}: its log is missing ({path})")
    if not follow or not run.is_active:
        damaged: list[int] = []
        torn: list[int] = []
        yield from with_ending(read_events(path, damaged=damaged, torn=torn), run, path)
        warn_damage(path, damaged, torn)
        return

    def finished() -> bool:
        mark_interrupted(ctx.store)  # the run's owner may die while it is followed
        current = ctx.store.get_run(run.id)
        return current is None or not current.is_active

    ended = False
    for event in follow_file(path, finished):
        ended = event.kind == RUN_FINISHED
        yield event
    current = ctx.store.get_run(run.id)
    if not ended and current is not None:
        yield from with_ending(iter(()), current, path)


def repair(ctx: Context) -> None:
    from ..history.repair import repair as rebuild

    _local_only(ctx, "history repair")
    ctx.close()  # the index is moved aside: no connection of ours may stay on it
    report = rebuild(ctx.paths.data_dir)
    if report.kept_aside is not None:
        info(f"the old index is kept as {report.kept_aside}")
    info(
        f"rebuilt the index of {report.runs} run(s): {report.from_logs} from their logs, "
        f"{report.from_old_index} from what the old index still held, "
        f"{report.runs - report.from_logs - report.from_old_index} from their folders alone"
    )


def warn_damage(path: Path, damaged: list[int], torn: list[int]) -> None:
    """Say what of a finished run's log could not be read: nothing is lost silently."""
    if damaged:
        lines = ", ".join(map(str, damaged[:5])) + (", ..." if len(damaged) > 5 else "")
        print(
            f"toolrun: warning: {path}: skipped {len(damaged)} damaged line(s) ({lines})",
            file=sys.stderr,
        )
    if torn:
        print(
            f"toolrun: warning: {path} ends early: its last line is cut short at byte "
            f"{torn[0]} (its writer was stopped mid-write)",
            file=sys.stderr,
        )


def _local(timestamp: float | None) -> str:
    if timestamp is None:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(timestamp))


def _local_only(ctx: Context, command: str) -> None:
    if ctx.remote:
        raise UsageError(f"`toolrun {command}` works on this machine's store, not with --remote")
