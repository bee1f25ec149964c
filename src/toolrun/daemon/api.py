"""The REST surface under ``/api/v1``, and ``/healthz``, ``/metrics``, ``/openapi.json``.

It stays whole as the one versioned surface ``openapi.py`` describes: a handler per route of
``app.py``'s table, each a few lines over the daemon (authorize, check the query, call the
store or the engine, answer), sharing the run lookup and query checks at the end.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

from msgspec import UNSET
from starlette.requests import Request
from starlette.responses import (
    FileResponse,
    JSONResponse,
    Response,
    StreamingResponse,
)

from ..errors import ToolrunError, UsageError
from ..history.endings import with_ending
from ..history.store import ACTIVE, RUN_ID_RE, RUN_STATES, HistoryQuery, RunRecord
from ..json_views import Run, Toolchain, run_view, tool_view, toolchain_view
from ..runs.events import OUTPUT, read_events
from ..toolchains.model import load_toolchain, toolchain_files
from ..units import parse_when
from .answers import (
    Artifacts,
    Cancelling,
    Controlled,
    File,
    RunChange,
    RunList,
    Tools,
    answer,
    plain,
)
from .answers import Toolchains as ToolchainList
from .bodies import BadRequest, decode_body_off_loop
from .core import KEEPALIVE_MARK, Daemon, HttpError, last_event_id, query_flag, query_value
from .metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from .requests import run_request
from .seed import RUN_ID_HEADER, SSE_HEADERS, content_kind, daemon_of, read_body
from .streams import KEEPALIVE, sse_data, sse_message, sse_stream, text_lines

MAX_PAGE_SIZE = 100
LIST_PARAMETERS = (
    "status",
    "page",
    "page_size",
    "cursor",
    "toolchain",
    "since",
    "until",
    "requester",
    "worker",
    "text",
)
WATCHER_BACKLOG = 1000


# -- runs -------------------------------------------------------------------------------------


async def runs(request: Request) -> Response:
    """``/api/v1/runs``: GET lists, POST starts."""
    return await (create_run(request) if request.method == "POST" else list_runs(request))


async def create_run(request: Request) -> Response:
    daemon = daemon_of(request)
    caller = daemon.authorize(request, "run")
    body = await read_body(request)
    kind = content_kind(request.headers.get("content-type", "")) or "json"
    data = await decode_body_off_loop(body, kind=kind)
    handle = await daemon.start_run(caller, run_request(data))
    return answer(
        _run_body(daemon, handle.record),
        status_code=202,
        headers={"Location": f"/api/v1/runs/{handle.id}", RUN_ID_HEADER: handle.id},
    )


async def list_runs(request: Request) -> Response:
    daemon = daemon_of(request)
    daemon.authorize(request, "read")
    params = {name: query_value(request, name) for name in LIST_PARAMETERS}
    status = params.get("status")
    if status is not None and status not in RUN_STATES:
        raise BadRequest(f"status must be one of {', '.join(RUN_STATES)}", field="status")
    page = _positive_int("1" if params["page"] is None else params["page"], "page")
    page_size = _positive_int(
        "20" if params["page_size"] is None else params["page_size"], "page_size"
    )
    if page_size > MAX_PAGE_SIZE:
        raise BadRequest(f"page_size is at most {MAX_PAGE_SIZE}", field="page_size")
    cursor = params.get("cursor")
    before = None
    if cursor is not None:
        if not RUN_ID_RE.fullmatch(cursor):
            raise BadRequest(f"cursor {cursor!r} is not a run id", field="cursor")
        before = await asyncio.to_thread(daemon.store.position_of, cursor)
        if before is None:
            raise HttpError(404, "not_found", f"cursor {cursor!r} names no run", field="cursor")
    query = HistoryQuery(
        status=status,
        toolchain=params.get("toolchain") or None,
        since=_when(params.get("since"), "since"),
        until=_when(params.get("until"), "until"),
        requester=params.get("requester") or None,
        worker=params.get("worker") or None,
        text=params.get("text") or None,
        limit=page_size + 1,  # one more tells whether another page follows
        offset=(page - 1) * page_size,  # after the cursor's run, when there is one
        before=before,
    )
    runs = await asyncio.to_thread(daemon.store.list_runs, query)
    more = len(runs) > page_size
    runs = runs[:page_size]
    return answer(
        RunList(
            runs=[run_view(run) for run in runs],
            page=page,
            page_size=page_size,
            next_cursor=runs[-1].id if more and runs else None,
        )
    )


async def get_run(request: Request) -> Response:
    daemon = daemon_of(request)
    daemon.authorize(request, "read")
    record = _record(daemon, request)
    return answer(_run_body(daemon, record))


def _going_run_of_caller(request: Request) -> tuple[Daemon, RunRecord]:
    """The run named in the path, still going, that this caller may change (its own; any,
    for an admin): 403, 404 or 409 otherwise."""
    daemon = daemon_of(request)
    caller = daemon.authorize(request, "run")
    record = _record(daemon, request)
    if not caller.has("admin") and record.requester != caller.name:
        raise HttpError(403, "forbidden", f"run {record.id} was started by someone else")
    if record.status not in ACTIVE:
        raise HttpError(409, "finished", f"run {record.id} has already ended ({record.status})")
    return daemon, record


async def cancel_run(request: Request) -> Response:
    daemon, record = _going_run_of_caller(request)
    if not daemon.manager.cancel(record.id):
        # Another process owns it (a terminal's `toolrun run`): it sees the request and stops.
        await asyncio.to_thread(daemon.store.request_cancel, record.id)
    return answer(Cancelling(id=record.id), status_code=202)


async def pause_run(request: Request) -> Response:
    """``?now=true`` freezes the running steps too."""
    now = query_flag(request, "now")
    return await _control(request, 2 if now else 1)


async def resume_run(request: Request) -> Response:
    return await _control(request, 0)


async def _control(request: Request, wanted: int) -> Response:
    from ..executors.containment import freeze_refusal

    daemon, record = _going_run_of_caller(request)
    if wanted == 2 and record.id in daemon.manager.live:
        refusal = freeze_refusal() or (
            "its steps run on the cluster's workers, which toolrun does not freeze; pause "
            "without now=true starts no further step"
            if daemon.cluster is not None
            else None
        )
        if refusal:
            raise HttpError(409, "cannot_freeze", refusal, field="now")
    # Asked in the store for whichever process owns it, and at once when this daemon does.
    await asyncio.to_thread(daemon.store.request_control, record.id, wanted)
    daemon.manager.control(record.id, wanted)
    shown = {0: "resume", 1: "pause", 2: "pause_now"}[wanted]
    return answer(Controlled(id=record.id, wanted=shown), status_code=202)  # type: ignore[arg-type]


async def rerun_run(request: Request) -> Response:
    """Run a past run again: same toolchain text, params and tool versions."""
    from ..runs.reruns import NothingToRerun, plan_rerun

    daemon = daemon_of(request)
    caller = daemon.authorize(request, "run")
    record = _record(daemon, request)
    if not caller.may_run(record.toolchain):
        raise HttpError(403, "forbidden", f"token {caller.name!r} may not run {record.toolchain!r}")
    from_failed = query_flag(request, "from_failed")
    try:
        toolchain, params, options = await asyncio.to_thread(
            plan_rerun,
            daemon.store,
            record.id,
            from_failed=from_failed,
            toolchain_dirs=daemon.ctx.toolchain_dirs(),
        )
    except NothingToRerun as exc:
        raise HttpError(409, "nothing_to_run", exc.message) from None
    handle = await daemon.submit(caller, toolchain, params, options)
    return answer(
        _run_body(daemon, handle.record),
        status_code=202,
        headers={"Location": f"/api/v1/runs/{handle.id}", RUN_ID_HEADER: handle.id},
    )


async def run_events_sse(request: Request) -> Response:
    """The run's events: stored, then live until it ends; ``follow=false`` stops at the
    stored ones."""
    daemon = daemon_of(request)
    private = daemon.authorize(request, "read").has("admin")
    record = _record(daemon, request)
    after = last_event_id(request)
    if not query_flag(request, "follow", default=True):
        handle = daemon.manager.live.get(record.id)
        if handle is not None:
            handle.channel.log.flush()
        path = daemon.store.run_dir(record.id) / "events.jsonl"
        # A plain iterator: Starlette reads it in a worker thread, one event at a time, so a
        # run of millions of lines is never held in memory whole.
        events = read_events(path, after=after)
        if not record.is_active:
            events = with_ending(events, record, path)
        stored = (sse_message(event, private=private) for event in events)
        return StreamingResponse(stored, media_type="text/event-stream", headers=SSE_HEADERS)

    async def messages() -> AsyncIterator[bytes]:
        async for chunk in sse_stream(
            daemon.manager, daemon.store, record.id, after=after, private=private
        ):
            yield chunk

    return StreamingResponse(messages(), media_type="text/event-stream", headers=SSE_HEADERS)


async def run_log(request: Request) -> Response:
    """The log as text; ``step`` keeps one step's output, ``offset``/``limit`` page by line."""
    daemon = daemon_of(request)
    daemon.authorize(request, "read")
    record = _record(daemon, request)
    step = query_value(request, "step")
    steps = await asyncio.to_thread(daemon.store.steps, record.id)
    if step is not None and step not in {s.step_id for s in steps}:
        raise HttpError(
            404, "not_found", f"run {record.id} has no step {step[:40]!r}", field="step"
        )
    offset = _positive_int(query_value(request, "offset", "0"), "offset", minimum=0)
    limit_text = query_value(request, "limit")
    limit = _positive_int(limit_text, "limit") if limit_text is not None else None
    path = daemon.store.run_dir(record.id) / "events.jsonl"
    prefix = len(steps) > 1 and step is None
    return StreamingResponse(
        _log_lines(path, step, prefix, offset, limit),
        media_type="text/plain; charset=utf-8",
        headers={RUN_ID_HEADER: record.id},
    )


LOG_CHUNK = 64 * 1024


def _log_lines(
    path: Path, step: str | None, prefix: bool, offset: int, limit: int | None
) -> Iterator[bytes]:
    # Starlette runs a plain iterator in a worker thread, one hop per item: lines go out in
    # chunks of about LOG_CHUNK, or a log of 40,000 lines took ten seconds to send.
    seen = 0
    sent = 0
    chunk: list[bytes] = []
    size = 0
    for event in read_events(path):
        if step is not None and (event.step != step or event.kind != OUTPUT):
            continue
        for line in text_lines(event, prefix=prefix).splitlines(keepends=True):
            seen += 1
            if seen <= offset:
                continue
            if limit is not None and sent >= limit:
                if chunk:
                    yield b"".join(chunk)
                return
            sent += 1
            chunk.append(line)
            size += len(line)
            if size >= LOG_CHUNK:
                yield b"".join(chunk)
                chunk, size = [], 0
    if chunk:
        yield b"".join(chunk)


async def list_artifacts(request: Request) -> Response:
    daemon = daemon_of(request)
    daemon.authorize(request, "read")
    record = _record(daemon, request)
    root = daemon.store.run_dir(record.id) / "work"
    files = await asyncio.to_thread(_listing, root)
    return answer(Artifacts(id=record.id, files=files))


def _listing(root: Path) -> list[File]:
    if not root.is_dir():
        return []
    files = []
    for path in sorted(root.rglob("*")):
        if path.is_file() and not path.is_symlink():
            stat = path.stat()
            files.append(
                File(
                    path=path.relative_to(root).as_posix(),
                    size=stat.st_size,
                    sha256=_file_sha256(str(path), stat.st_size, stat.st_mtime_ns),
                )
            )
    return files


@functools.lru_cache(maxsize=4096)
def _file_sha256(path: str, size: int, mtime_ns: int) -> str:
    """A file's sha256, hashed once while its size and time stay (a run page shows them on
    every visit, and the workspace of a finished run does not change)."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


async def get_artifact(request: Request) -> Response:
    daemon = daemon_of(request)
    daemon.authorize(request, "read")
    record = _record(daemon, request)
    root = (daemon.store.run_dir(record.id) / "work").resolve()
    relative = request.path_params["path"]
    if relative.startswith(("/", "\\")) or ".." in relative.replace("\\", "/").split("/"):
        raise BadRequest("the artifact path must stay inside the run's workspace", field="path")
    missing = HttpError(404, "not_found", f"run {record.id} has no file {relative[:200]!r}")
    try:
        target = (root / relative).resolve()
        if not target.is_relative_to(root) or not target.is_file():
            raise missing
    except (OSError, ValueError):  # a name too long for the file system, a NUL byte
        raise missing from None
    # Whatever the file is, it is downloaded, never shown: a run's HTML must not run in the
    # daemon's origin.
    return FileResponse(
        target,
        filename=target.name,
        media_type="application/octet-stream",
        headers={"X-Content-Type-Options": "nosniff"},
    )


# -- the daemon-wide stream --------------------------------------------------------------------


async def all_events(request: Request) -> Response:
    """Every run's state changes as they happen (not resumable: it carries no history)."""
    daemon = daemon_of(request)
    daemon.authorize(request, "read")
    queue: asyncio.Queue[Any] = asyncio.Queue(maxsize=WATCHER_BACKLOG)
    daemon.watchers.add(queue)

    async def messages() -> AsyncIterator[bytes]:
        # A plain wait on the queue, and whatever else is queued sent with it: the daemon's
        # one keepalive sweep (Daemon.keep_watchers_alive) fills the quiet spells, not a timer
        # per reader and per message (100 dashboards spent most of their cost there).
        try:
            yield sse_data("hello", plain(daemon.health()))
            while True:
                burst = [await queue.get()]
                while not queue.empty():
                    burst.append(queue.get_nowait())
                ended = None in burst
                chunk = b"".join(
                    KEEPALIVE if item is KEEPALIVE_MARK else _change_message(item)
                    for item in burst
                    if item is not None
                )
                if chunk:
                    yield chunk
                if ended:
                    return
        finally:
            daemon.watchers.discard(queue)

    return StreamingResponse(messages(), media_type="text/event-stream", headers=SSE_HEADERS)


_ENCODED: dict[int, tuple[Any, bytes]] = {}  # id(change) -> (change, its message)


def _change_message(change: Any) -> bytes:
    """A change's SSE message, encoded once for all its readers (every open dashboard reads
    this stream: 100 of them encoded each change 100 times)."""
    found = _ENCODED.get(id(change))
    if found is not None and found[0] is change:
        return found[1]
    message = sse_data(
        "run",
        plain(
            RunChange(
                id=change.run_id,
                toolchain=change.toolchain,
                status=change.status,
                requester=change.requester,
                at=change.at,
                duration=change.duration,
            )
        ),
    )
    if len(_ENCODED) >= 64:
        _ENCODED.clear()
    _ENCODED[id(change)] = (change, message)  # the change held: its id is not reused meanwhile
    return message


# -- tools and toolchains ---------------------------------------------------------------------


async def list_tools(request: Request) -> Response:
    daemon = daemon_of(request)
    private = daemon.authorize(request, "read").has("admin")
    installed = await asyncio.to_thread(daemon.ctx.installer.installed)
    body = Tools(installed=[tool_view(tool, private=private) for tool in installed])
    if query_flag(request, "available"):
        offered = await asyncio.to_thread(daemon.ctx.resolver.available)
        body.available = {
            name: {version: registry.name for version, registry in versions.items()}
            for name, versions in offered.versions.items()
        }
    return answer(body)


async def list_toolchains(request: Request) -> Response:
    daemon = daemon_of(request)
    private = daemon.authorize(request, "read").has("admin")
    rows = await asyncio.to_thread(_toolchains, daemon, private)
    return answer(ToolchainList(toolchains=rows))


def _toolchains(daemon: Daemon, private: bool) -> list[Toolchain]:
    """Every toolchain the daemon finds; to a caller without the admin scope, without the
    folders they are in."""
    rows: list[Toolchain] = []
    for path in toolchain_files(daemon.ctx.toolchain_dirs()):
        try:
            row = toolchain_view(load_toolchain(path))
            row.name, row.valid = path.stem, True
            if not private:
                row.path = UNSET
        except ToolrunError as exc:
            error = exc.message if private else exc.message.replace(str(path), path.name)
            row = Toolchain(name=path.stem, valid=False, error=error)
        rows.append(row)
    return rows


# -- operations -------------------------------------------------------------------------------


async def healthz(request: Request) -> Response:
    daemon = daemon_of(request)
    return answer(daemon.health(), status_code=503 if daemon.manager.draining else 200)


async def metrics(request: Request) -> Response:
    daemon = daemon_of(request)
    daemon.authorize(request, "read")
    workers = None
    if daemon.cluster is not None:
        from .cluster_api import workers_answer

        workers = await workers_answer(daemon)
        if daemon.cluster.executor is not None:
            daemon.metrics.lost(daemon.cluster.executor.lost_workers)
    body = daemon.metrics.render(daemon.manager, workers)
    return Response(body, media_type=METRICS_CONTENT_TYPE)


async def openapi(request: Request) -> Response:
    from .openapi import document

    return JSONResponse(document())


# -- helpers ----------------------------------------------------------------------------------


def _record(daemon: Daemon, request: Request) -> RunRecord:
    run_id = daemon.run_or_404(request.path_params["run_id"])
    record = daemon.store.get_run(run_id)
    if record is None:
        raise HttpError(404, "not_found", f"no run {run_id}")
    return record


def _run_body(daemon: Daemon, record: RunRecord) -> Run:
    fresh = daemon.store.get_run(record.id) or record
    body = run_view(fresh, daemon.store.steps(record.id))
    position = daemon.manager.position(record.id)
    if position is not None:
        body.position = position
    body.links = {
        "self": f"/api/v1/runs/{record.id}",
        "events": f"/api/v1/runs/{record.id}/events",
        "log": f"/api/v1/runs/{record.id}/log",
        "result": f"/result/{record.id}",
    }
    return body


MAX_INT = 2**53  # past any page, offset or line a store holds; SQLite's integers stop at 2**63


def _positive_int(text: str | None, name: str, *, minimum: int = 1) -> int:
    text = text or ""
    if not (text.isascii() and text.isdigit()):  # int() would take "+5", " 5" and "٥"
        raise BadRequest(f"{name} must be a whole number, not {text[:40]!r}", field=name)
    value = int(text) if len(text) <= 20 else MAX_INT + 1
    if value < minimum:
        raise BadRequest(f"{name} must be at least {minimum}", field=name)
    if value > MAX_INT:
        raise BadRequest(f"{name} must be at most {MAX_INT}", field=name)
    return value


def _when(text: str | None, name: str) -> float | None:
    if text is None:
        return None
    try:
        if text != text.strip():
            raise UsageError(f"{name} holds spaces")
        return parse_when(text, name)
    except UsageError as exc:
        raise BadRequest(exc.message, field=name) from None
