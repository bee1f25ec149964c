"""The seed's endpoints, kept as it wrote them: ``/cmd``, ``/result/<id>``, ``/result/help``.

``/cmd`` answers in one of three ways: the output streamed as it is produced (the default),
the run id at once (``onlyid=true``, 202), or Server-Sent Events (``sse=true``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from urllib.parse import unquote

from starlette.requests import Request
from starlette.responses import (
    HTMLResponse,
    JSONResponse,
    PlainTextResponse,
    Response,
    StreamingResponse,
)

from ..events import read_events
from ..store import ACTIVE
from ..versions import MAX_NAME, MAX_SPEC, is_tool_name
from .core import Daemon, HttpError, last_event_id, query_flag
from .requests import (
    MAX_ARGS,
    MAX_BODY,
    BadRequest,
    RunRequest,
    decode_body_off_loop,
    run_request,
)
from .streams import run_event_batches, sse_stream, text_lines

RUN_ID_HEADER = "X-Toolrun-Run-Id"
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def daemon_of(request: Request) -> Daemon:
    daemon: Daemon = request.app.state.daemon
    return daemon


async def cmd_get(request: Request) -> Response:
    """``GET /cmd/<tool>[@<version>]/<arg>/...``: one tool, its args from the path."""
    daemon = daemon_of(request)
    caller = daemon.authorize(request, "run")
    # The raw path keeps an arg's encoded '/' (%2F) inside that arg.
    raw = request.scope.get("raw_path", request.url.path.encode()).decode("latin-1")
    try:
        parts = [unquote(part, errors="strict") for part in raw.split("?", 1)[0].split("/")[2:]]
    except UnicodeDecodeError:
        raise BadRequest("the path is not UTF-8 text once decoded", field="args") from None
    if not parts or not parts[0]:
        raise BadRequest("name a tool: /cmd/<tool>[@<version>]/<arg>/...", field="cmd")
    name, at, version = parts[0].partition("@")
    if not is_tool_name(name):
        raise BadRequest(
            f"{name[:40]!r} is not a tool name (at most {MAX_NAME} characters)", field="cmd"
        )
    if at and (not version or len(version) > MAX_SPEC):
        raise BadRequest(
            f"name a version after '@' (at most {MAX_SPEC} characters)", field="version"
        )
    args = parts[1:]
    if args and args[-1] == "":
        args.pop()  # /cmd/tool/arg/ : the trailing slash is not an empty argument
    if len(args) > MAX_ARGS:
        raise BadRequest(f"the path holds {len(args)} arguments; at most {MAX_ARGS}", field="args")
    for index, arg in enumerate(args):
        if "\0" in arg:
            raise BadRequest(f"args[{index}] holds a NUL byte", field="args")
    wanted = RunRequest(cmd=name, version=version or None, args=args)
    return await _answer(request, daemon, caller, wanted)


async def cmd_post(request: Request) -> Response:
    """``POST /cmd?body=yaml|json&onlyid=&sse=&toolchain=``."""
    daemon = daemon_of(request)
    caller = daemon.authorize(request, "run")
    body = await read_body(request)
    data = await decode_body_off_loop(body, kind=body_kind(request))
    wanted = run_request(data, toolchain=request.query_params.get("toolchain"))
    return await _answer(request, daemon, caller, wanted)


async def _answer(request: Request, daemon: Daemon, caller: object, wanted: RunRequest) -> Response:
    only_id, sse = query_flag(request, "onlyid"), query_flag(request, "sse")
    handle = await daemon.start_run(caller, wanted)  # type: ignore[arg-type]
    headers = {RUN_ID_HEADER: handle.id}
    if only_id:
        headers["Location"] = f"/result/{handle.id}"
        return PlainTextResponse(handle.id, status_code=202, headers=headers)
    if sse:
        stream = _sse(daemon, handle.id, 0)
        return StreamingResponse(
            stream, media_type="text/event-stream", headers={**headers, **SSE_HEADERS}
        )
    prefix = len(handle.steps) > 1
    return StreamingResponse(
        _text(daemon, handle.id, prefix), media_type="text/plain; charset=utf-8", headers=headers
    )


async def result(request: Request) -> Response:
    """``GET /result/<id>[?sse=true]``: 202 while the run goes, its whole output once ended."""
    daemon = daemon_of(request)
    daemon.authorize(request, "read")
    run_id = daemon.run_or_404(request.path_params["run_id"])
    sse = query_flag(request, "sse")
    record = daemon.store.get_run(run_id)
    if record is None:
        raise HttpError(404, "not_found", f"no run {run_id}")
    headers = {RUN_ID_HEADER: run_id}
    if sse:
        stream = _sse(daemon, run_id, last_event_id(request))
        return StreamingResponse(
            stream, media_type="text/event-stream", headers={**headers, **SSE_HEADERS}
        )
    if record.status in ACTIVE:
        body: dict[str, object] = {"id": run_id, "status": record.status}
        position = daemon.manager.position(run_id)
        if position is not None:
            body["position"] = position
        return JSONResponse(body, status_code=202, headers={**headers, "Retry-After": "1"})
    prefix = len(daemon.store.steps(run_id)) > 1
    path = daemon.store.run_dir(run_id) / "events.jsonl"
    return StreamingResponse(
        _stored_text(path, prefix), media_type="text/plain; charset=utf-8", headers=headers
    )


async def help_page(request: Request) -> Response:
    from .manual import manual_html

    return HTMLResponse(manual_html())


# -- bodies -----------------------------------------------------------------------------------


def body_kind(request: Request) -> str:
    kind = request.query_params.get("body")
    if kind is None:
        content_type = request.headers.get("content-type", "")
        return "json" if "json" in content_type.lower() else "yaml"
    if kind.lower() not in ("yaml", "json"):
        raise BadRequest(f"?body= must be yaml or json, not {kind!r}", field="body")
    return kind.lower()


async def read_body(request: Request) -> bytes:
    """The body, refused with 413 as soon as it passes 1 MiB (never read whole first)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_BODY:
        raise BadRequest(f"the body is over {MAX_BODY} bytes", status=413)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY:
            raise BadRequest(f"the body is over {MAX_BODY} bytes", status=413)
        chunks.append(chunk)
    return b"".join(chunks)


# -- streams ----------------------------------------------------------------------------------


def _sse(daemon: Daemon, run_id: str, after: int) -> AsyncIterator[bytes]:
    return sse_stream(daemon.manager, daemon.store, run_id, after=after)


async def _text(daemon: Daemon, run_id: str, prefix: bool) -> AsyncIterator[bytes]:
    async for batch in run_event_batches(daemon.manager, daemon.store, run_id):
        chunk = b"".join(text_lines(event, prefix=prefix) for event in batch)
        if chunk:
            yield chunk


def _stored_text(path: object, prefix: bool) -> Iterator[bytes]:
    # A sync generator: Starlette reads it in a worker thread, a chunk at a time.
    pending: list[bytes] = []
    size = 0
    for event in read_events(path):  # type: ignore[arg-type]
        chunk = text_lines(event, prefix=prefix)
        if chunk:
            pending.append(chunk)
            size += len(chunk)
            if size >= 64 * 1024:
                yield b"".join(pending)
                pending, size = [], 0
    if pending:
        yield b"".join(pending)
