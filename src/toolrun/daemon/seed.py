"""The seed's endpoints, kept as it wrote them: ``/cmd``, ``/result/<id>``, ``/result/help``.

``/cmd`` answers in one of three ways: the output streamed as it is produced (the default),
the run id at once (``onlyid=true``, 202), or Server-Sent Events (``sse=true``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from msgspec import UNSET
from starlette.requests import Request
from starlette.responses import (
    HTMLResponse,
    PlainTextResponse,
    Response,
    StreamingResponse,
)

from ..history.endings import with_ending
from ..history.store import ACTIVE, RunRecord
from ..runs.events import read_events
from ..tools.versions import MAX_NAME, MAX_SPEC, is_constraint, is_tool_name
from .answers import Pending, answer
from .auth import Caller
from .bodies import MAX_BODY, BadRequest, decode_body_off_loop
from .core import Daemon, HttpError, last_event_id, query_flag, query_value
from .requests import (
    MAX_ARGS,
    RunRequest,
    run_request,
)
from .streams import (
    EXIT_CODE_HEADER,
    STATUS_HEADER,
    PlainStream,
    run_event_batches,
    sse_stream,
    status_headers,
)
from .trailers import wanted as trailers_wanted

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
    if at and not is_constraint(version):
        raise BadRequest(
            f"after '@', name a version constraint such as 0.1.0, ^1.2 or latest (at most "
            f"{MAX_SPEC} characters), not {version[:40]!r}",
            field="version",
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
    named = query_value(request, "toolchain")
    if named is not None:
        if not caller.may_run(named):
            raise HttpError(
                403, "forbidden", f"token {caller.name!r} may not run {named!r}", field="toolchain"
            )
        # What does not exist is said first, whatever the body: 404, as for a run.
        await daemon.toolchain_exists(named)
    body = await read_body(request)
    data = await decode_body_off_loop(body, kind=body_kind(request))
    wanted = run_request(data, toolchain=named)
    return await _answer(request, daemon, caller, wanted)


MODES = ("stream", "buffered")
# A buffered answer's status says how the run ended (webhookd's X-Hook-Mode: buffered).
BUFFERED_STATUS = {"succeeded": 200, "timed_out": 504}


async def _answer(request: Request, daemon: Daemon, caller: Caller, wanted: RunRequest) -> Response:
    only_id, sse = query_flag(request, "onlyid"), query_flag(request, "sse")
    mode = query_value(request, "mode", "stream") or ""
    if mode not in MODES:
        raise BadRequest(f"?mode= must be stream or buffered, not {mode[:40]!r}", field="mode")
    handle = await daemon.start_run(caller, wanted)
    headers = {RUN_ID_HEADER: handle.id}
    if only_id:
        headers["Location"] = f"/result/{handle.id}"
        return PlainTextResponse(handle.id, status_code=202, headers=headers)
    if sse:
        stream = _sse(daemon, handle.id, 0, caller.has("admin"))
        return StreamingResponse(
            stream, media_type="text/event-stream", headers={**headers, **SSE_HEADERS}
        )
    if mode == "buffered":
        await daemon.manager.wait(handle.id)
        record = daemon.store.require_run(handle.id)
        return _stored_answer(daemon, record, headers, buffered=True)
    plain = PlainStream(steps=len(handle.steps))
    return PlainStreamResponse(_text(daemon, handle.id, plain), plain, headers=headers)


class PlainStreamResponse(StreamingResponse):
    """The plain stream, with the run's status and exit code as trailers when the client
    takes them (``TE: trailers``)."""

    def __init__(self, content: AsyncIterator[bytes], plain: PlainStream, **kwargs: object) -> None:
        super().__init__(content, media_type="text/plain; charset=utf-8", **kwargs)  # type: ignore[arg-type]
        self.plain = plain

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if not trailers_wanted(scope):
            await super().__call__(scope, receive, send)
            return
        names = f"{STATUS_HEADER}, {EXIT_CODE_HEADER}".encode()

        async def with_trailers(message: Any) -> None:
            if message["type"] == "http.response.start":
                headers = [*message.get("headers", []), (b"trailer", names)]
                message = {**message, "headers": headers, "trailers": True}
            await send(message)
            if message["type"] == "http.response.body" and not message.get("more_body"):
                trailers = [
                    (name.lower().encode(), value.encode())
                    for name, value in self.plain.status_headers().items()
                ]
                await send({"type": "http.response.trailers", "headers": trailers})

        await super().__call__(scope, receive, with_trailers)


async def result(request: Request) -> Response:
    """``GET /result/<id>[?sse=true]``: 202 while the run goes, its whole output once ended."""
    daemon = daemon_of(request)
    private = daemon.authorize(request, "read").has("admin")
    run_id = daemon.run_or_404(request.path_params["run_id"])
    sse = query_flag(request, "sse")
    after = last_event_id(request)  # checked whether or not it is used
    record = daemon.store.get_run(run_id)
    if record is None:
        raise HttpError(404, "not_found", f"no run {run_id}")
    headers = {RUN_ID_HEADER: run_id}
    if sse:
        stream = _sse(daemon, run_id, after, private)
        return StreamingResponse(
            stream, media_type="text/event-stream", headers={**headers, **SSE_HEADERS}
        )
    if record.status in ACTIVE:
        position = daemon.manager.position(run_id)
        body = Pending(
            id=run_id,
            status=record.status,  # type: ignore[arg-type]
            position=UNSET if position is None else position,
        )
        return answer(body, status_code=202, headers={**headers, "Retry-After": "1"})
    return _stored_answer(daemon, record, headers)


def _stored_answer(
    daemon: Daemon, record: RunRecord, headers: dict[str, str], *, buffered: bool = False
) -> Response:
    """A finished run's whole output, read from its log as it is sent (never held whole);
    its status and exit code in headers. ``buffered``: the status code says how it ended."""
    steps = daemon.store.steps(record.id)
    path = daemon.store.run_dir(record.id) / "events.jsonl"
    status = BUFFERED_STATUS.get(record.status, 500) if buffered else 200
    return StreamingResponse(
        _stored_text(path, record, PlainStream(steps=len(steps))),
        status_code=status,
        media_type="text/plain; charset=utf-8",
        headers={**headers, **status_headers(record, steps)},
    )


async def help_page(request: Request) -> Response:
    from .manual import manual_html

    return HTMLResponse(manual_html())


# -- bodies -----------------------------------------------------------------------------------


def body_kind(request: Request) -> str:
    """JSON or YAML: as a JSON or YAML Content-Type says, else as ``?body=`` says (the
    seed's switch, for clients such as ``curl -d`` that send a form's type), else YAML."""
    kind = query_value(request, "body")
    if kind is not None and kind not in ("yaml", "json"):
        raise BadRequest(f"?body= must be yaml or json, not {kind[:40]!r}", field="body")
    declared = content_kind(request.headers.get("content-type", ""))
    return declared or kind or "yaml"


def content_kind(content_type: str) -> str | None:
    """json or yaml when a Content-Type names one (application/json, application/yaml,
    text/yaml, application/x-yaml, +json ...), else None."""
    media = content_type.split(";", 1)[0].strip().lower()
    if media == "application/json" or media.endswith("+json"):
        return "json"
    if media in ("application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml"):
        return "yaml"
    return None


async def read_body(request: Request, limit: int = MAX_BODY) -> bytes:
    """The body, refused with 413 as soon as it passes ``limit`` (never read whole first)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BadRequest(f"the body is over {limit} bytes", status=413)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BadRequest(f"the body is over {limit} bytes", status=413)
        chunks.append(chunk)
    return b"".join(chunks)


# -- streams ----------------------------------------------------------------------------------


def _sse(daemon: Daemon, run_id: str, after: int, private: bool) -> AsyncIterator[bytes]:
    return sse_stream(daemon.manager, daemon.store, run_id, after=after, private=private)


async def _text(daemon: Daemon, run_id: str, plain: PlainStream) -> AsyncIterator[bytes]:
    async for batch in run_event_batches(daemon.manager, daemon.store, run_id):
        chunk = plain.chunk(batch)
        if chunk:
            yield chunk


def _stored_text(path: Path, record: RunRecord, plain: PlainStream) -> Iterator[bytes]:
    # A sync generator: Starlette reads it in a worker thread, a chunk at a time.
    pending: list[bytes] = []
    size = 0
    for event in with_ending(read_events(path), record, path):
        chunk = plain.chunk([event])
        if chunk:
            pending.append(chunk)
            size += len(chunk)
            if size >= 64 * 1024:
                yield b"".join(pending)
                pending, size = [], 0
    if pending:
        yield b"".join(pending)
