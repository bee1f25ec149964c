"""The pages under ``/ui/``: each reads what the API reads, as the caller may, and renders it.

Who is asking is decided as for the API (tokens, their scopes and allow-lists), with the
browser's session cookie in place of the ``Authorization`` header (sessions.py). Forms post
back here with a CSRF token; a refusal or a mistake comes back as a page, in the viewer's
language, never as JSON or a traceback.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from ..errors import ToolrunError, UsageError
from ..history.model import ACTIVE, RUN_ID_RE, RUN_STATES, RunRecord, StepRecord
from ..history.queries import HistoryQuery
from ..records import record
from ..toolchains.model import ParamSpec, Toolchain, convert_param
from ..units import parse_when
from . import i18n, logs
from .render import render_page
from .sessions import CSRF_COOKIE, LANGUAGE_COOKIE, SESSION_COOKIE, csrf_matches, new_csrf

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ..daemon.auth import Caller
    from ..daemon.core import Daemon

STATIC_DIR = Path(__file__).resolve().parent / "static"
PAGE_SIZE = 50
LOG_LINES = 1000
MAX_LOG_LINES = 100_000
STEP_STATUSES = ("pending", "running", "succeeded", "failed", "timed_out", "worker_lost")


class PageError(Exception):
    """A page that cannot be shown: its status, and a message already in the viewer's words."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@record
class Viewer:
    """Who looks, in which language, with which CSRF token."""

    caller: Caller | None
    language: str
    csrf: str
    new_csrf: bool
    chosen_language: str | None  # ?lang= on this request: kept in a cookie
    signed_in: bool
    tokens_required: bool

    @property
    def _(self) -> i18n.Translate:
        return i18n.translator(self.language)


Handler = Callable[[Request, "Daemon", Viewer], Awaitable[Response]]


@record(frozen=True)
class Form:
    """A posted form's fields, in order (every form here is urlencoded)."""

    fields: list[tuple[str, str]]

    def get(self, name: str, default: str = "") -> str:
        return next((value for key, value in self.fields if key == name), default)

    def getlist(self, name: str) -> list[str]:
        return [value for key, value in self.fields if key == name]


async def form_of(request: Request) -> Form:
    """The posted form, read once (at most 1 MiB, as every body the daemon takes)."""
    cached: Form | None = getattr(request.state, "form", None)
    if cached is None:
        from urllib.parse import parse_qsl

        from ..daemon.seed import read_body

        body = await read_body(request)
        try:
            pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, max_num_fields=1000)
        except (UnicodeDecodeError, ValueError):
            raise PageError(400, "the form could not be read") from None
        cached = Form(pairs)
        request.state.form = cached
    return cached


def daemon_of(request: Request) -> Daemon:
    daemon: Daemon = request.app.state.daemon
    return daemon


def viewer_of(request: Request, daemon: Daemon) -> Viewer:
    chosen = request.query_params.get("lang")
    chosen = chosen if chosen in i18n.LANGUAGES else None
    language = i18n.choose(
        chosen or request.cookies.get(LANGUAGE_COOKIE), request.headers.get("accept-language")
    )
    csrf = request.cookies.get(CSRF_COOKIE) or ""
    fresh = not (16 <= len(csrf) <= 64 and csrf.replace("-", "").replace("_", "").isalnum())
    if fresh:
        csrf = new_csrf()
    caller, signed_in = _caller(request, daemon)
    return Viewer(caller, language, csrf, fresh, chosen, signed_in, daemon.tokens.required)


def _caller(request: Request, daemon: Daemon) -> tuple[Caller | None, bool]:
    from ..daemon.auth import Caller

    if not daemon.tokens.required:
        client = request.client.host if request.client else "unknown"
        return Caller(client, "admin"), False
    session = daemon.sessions.get(request.cookies.get(SESSION_COOKIE), daemon.tokens.tokens)
    if session is None:
        return None, False
    request.state.caller = session.name
    return Caller(session.name, session.scope, session.allow), True


def page(
    scope: str | None = "read",
) -> Callable[[Handler], Callable[[Request], Awaitable[Response]]]:
    """A page handler: the viewer found, sign-in asked for when needed, errors as pages."""

    def wrap(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        @functools.wraps(handler)
        async def endpoint(request: Request) -> Response:
            daemon = daemon_of(request)
            viewer = viewer_of(request, daemon)
            _ = viewer._
            try:
                if scope is not None:
                    if viewer.caller is None and _arrived_from_elsewhere(request):
                        # A link from another site: the browser kept the (SameSite=Strict)
                        # session cookie back. Our own reload of the page sends it.
                        return _finish(HTMLResponse(RELOAD), viewer)
                    if viewer.caller is None:
                        wanted = request.url.path + (
                            f"?{request.url.query}" if request.url.query else ""
                        )
                        return _finish(
                            RedirectResponse(f"/ui/login?next={quote(wanted)}", status_code=303),
                            viewer,
                        )
                    if not viewer.caller.has(scope):
                        raise PageError(
                            403,
                            _(
                                "The token %(name)s has the scope %(scope)s; "
                                "this needs %(needed)s.",
                                name=viewer.caller.name,
                                scope=viewer.caller.scope,
                                needed=scope,
                            ),
                        )
                if request.method == "POST":
                    form = await form_of(request)
                    if not csrf_matches(
                        request.cookies.get(CSRF_COOKIE), str(form.get("csrf", ""))
                    ):
                        raise PageError(
                            403,
                            _(
                                "This form has expired or came from another site. "
                                "Reload the page and try again."
                            ),
                        )
                response = await handler(request, daemon, viewer)
            except PageError as exc:
                response = error_page(viewer, exc.status, exc.message)
            except ToolrunError as exc:
                from ..daemon.core import http_error_for

                response = error_page(viewer, http_error_for(exc).status, exc.message)
            return _finish(response, viewer)

        return endpoint

    return wrap


RELOAD = '<!doctype html><meta http-equiv="refresh" content="0"><title>toolrun</title>'


def _arrived_from_elsewhere(request: Request) -> bool:
    return request.headers.get("sec-fetch-site", "").lower() in ("cross-site", "same-site")


def _finish(response: Response, viewer: Viewer) -> Response:
    """The cookies a page keeps, and the headers every page has."""
    if viewer.new_csrf:
        response.set_cookie(CSRF_COOKIE, viewer.csrf, httponly=True, samesite="strict", path="/ui/")
    if viewer.chosen_language:
        response.set_cookie(
            LANGUAGE_COOKIE, viewer.chosen_language, max_age=365 * 86400, samesite="strict"
        )
    response.headers.update(SECURITY_HEADERS)
    return response


SECURITY_HEADERS = {
    # Only our own script and style, no inline code: output shown on a page can never run.
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
        "frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}


def html(viewer: Viewer, template: str, status: int = 200, **values: Any) -> HTMLResponse:
    return HTMLResponse(render_page(template, viewer, **values), status_code=status)


def error_page(viewer: Viewer, status: int, message: str) -> HTMLResponse:
    return html(viewer, "error.html", status, code=status, message=message)


# -- runs ---------------------------------------------------------------------------------------


@record(frozen=True)
class RunFilters:
    status: str = ""
    toolchain: str = ""
    requester: str = ""
    worker: str = ""
    since: str = ""
    until: str = ""
    text: str = ""
    page: int = 1

    def query(self, **changes: Any) -> str:
        """The URL's query for these filters (``changes`` applied), empty values left out."""
        values = {name: getattr(self, name) for name in FILTERS}
        values.update(changes)
        if values.get("page") == 1:
            values.pop("page")
        return urlencode({k: v for k, v in values.items() if v not in ("", None)})


FILTERS = ("status", "toolchain", "requester", "worker", "since", "until", "text", "page")


def filters_of(request: Request, _: i18n.Translate) -> tuple[RunFilters, dict[str, str]]:
    given = {name: request.query_params.get(name, "").strip()[:200] for name in FILTERS}
    problems: dict[str, str] = {}
    if given["status"] and given["status"] not in RUN_STATES:
        problems["status"] = _("Not a status a run can have.")
        given["status"] = ""
    for name in ("since", "until"):
        if given[name]:
            try:
                parse_when(given[name], f"--{name}")
            except UsageError:
                problems[name] = _(
                    "Write a date (2025-02-08, 2025-02-08T12:00) or an age (2h, 7d)."
                )
    page_text = given.pop("page") or "1"
    page_number = int(page_text) if page_text.isdigit() and 0 < int(page_text) < 100_000 else 1
    return RunFilters(**given, page=page_number), problems


def history_query(filters: RunFilters, problems: dict[str, str]) -> HistoryQuery:
    return HistoryQuery(
        status=filters.status or None,
        toolchain=filters.toolchain or None,
        requester=filters.requester or None,
        worker=filters.worker or None,
        since=parse_when(filters.since, "--since")
        if filters.since and "since" not in problems
        else None,
        until=parse_when(filters.until, "--until")
        if filters.until and "until" not in problems
        else None,
        text=filters.text or None,
        limit=PAGE_SIZE + 1,  # one more: whether there is a next page
        offset=(filters.page - 1) * PAGE_SIZE,
    )


@page()
async def runs_page(request: Request, daemon: Daemon, viewer: Viewer) -> Response:
    filters, problems = filters_of(request, viewer._)
    if request.query_params.get("fragment") == "rows" and not problems:
        # What every open runs page asks for after each change: made once per change and
        # filter, and shared (100 dashboards made the API's p99 12x slower without it).
        return HTMLResponse(await shared_rows(request, daemon, viewer, filters))
    query = history_query(filters, problems)
    found = await asyncio.to_thread(daemon.store.list_runs, query)
    rows = found[:PAGE_SIZE]
    workers = await asyncio.to_thread(_workers_of, daemon, rows)
    return html(
        viewer,
        "runs.html",
        400 if problems else 200,
        runs=rows,
        workers=workers,
        filters=filters,
        problems=problems,
        statuses=RUN_STATES,
        has_next=len(found) > PAGE_SIZE,
        now=time.time(),
    )


ROWS_FRESH_SECONDS = 2.0  # runs of other processes (a terminal's) show within this
MAX_SHARED = 256


async def shared_rows(request: Request, daemon: Daemon, viewer: Viewer, filters: RunFilters) -> str:
    """A page of rows made once per change of the daemon's runs (and at most every
    ROWS_FRESH_SECONDS), shared by every viewer asking for the same filters in the same
    language; those who ask while it is being made wait for it."""
    cache: dict[tuple[str, str], tuple[int, float, asyncio.Future[str]]] | None
    cache = getattr(request.app.state, "shared_rows", None)
    if cache is None:
        cache = request.app.state.shared_rows = {}
    key = (filters.query(), viewer.language)
    found = cache.get(key)
    now = time.monotonic()
    if found is not None and found[0] == daemon.changes and now - found[1] < ROWS_FRESH_SECONDS:
        return await asyncio.shield(found[2])
    made: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    if len(cache) >= MAX_SHARED:
        cache.clear()
    cache[key] = (daemon.changes, now, made)
    try:
        query = history_query(filters, {})
        runs = (await asyncio.to_thread(daemon.store.list_runs, query))[:PAGE_SIZE]
        workers = await asyncio.to_thread(_workers_of, daemon, runs)
        rows = render_page(
            "runs_fragment.html", viewer, runs=runs, workers=workers, now=time.time()
        )
    except BaseException as exc:
        cache.pop(key, None)
        made.set_exception(exc)
        made.exception()  # marked as seen: waiters, if any, get it too
        raise
    made.set_result(rows)
    return rows


def _workers_of(daemon: Daemon, runs: list[RunRecord]) -> dict[str, list[str]]:
    """The workers each run's steps ran on (none for a local run)."""
    found: dict[str, list[str]] = {}
    for run in runs:
        names = {name for step in daemon.store.steps(run.id) for name in step.workers if name}
        found[run.id] = sorted(names)
    return found


def _run_id(request: Request, viewer: Viewer) -> str:
    run_id = request.path_params["run_id"]
    if not RUN_ID_RE.fullmatch(run_id):
        raise PageError(404, viewer._("There is no run %(id)s.", id=run_id[:40]))
    return str(run_id)


@page()
async def run_page(request: Request, daemon: Daemon, viewer: Viewer) -> Response:
    _ = viewer._
    run_id = _run_id(request, viewer)
    run = await asyncio.to_thread(daemon.store.get_run, run_id)
    if run is None:
        raise PageError(404, _("There is no run %(id)s.", id=run_id))
    steps = await asyncio.to_thread(daemon.store.steps, run_id)
    step = request.query_params.get("step") or None
    if step is not None and step not in {s.step_id for s in steps}:
        step = None
    wanted = request.query_params.get("lines", "")
    count = min(int(wanted), MAX_LOG_LINES) if wanted.isdigit() and int(wanted) > 0 else LOG_LINES
    live = daemon.manager.live.get(run_id)
    if live is not None:
        live.channel.log.flush()
    path = daemon.store.run_dir(run_id) / "events.jsonl"
    log = await asyncio.to_thread(logs.tail, path, count, step=step)
    artifacts: list[Any] = []
    if not run.is_active:
        from ..daemon.api import _listing

        artifacts = await asyncio.to_thread(_listing, daemon.store.run_dir(run_id) / "work")
    dag, timeline = await asyncio.to_thread(_pictures, daemon, run, steps)
    caller = viewer.caller
    assert caller is not None
    may_run = caller.has("run") and caller.may_run(run.toolchain)
    may_cancel = caller.has("admin") or (caller.has("run") and run.requester == caller.name)
    return html(
        viewer,
        "run.html",
        run=run,
        dag=dag,
        timeline=timeline,
        steps=steps,
        log=log,
        log_step=step,
        log_count=count,
        log_bytes=logs.file_size(path),
        artifacts=artifacts,
        position=daemon.manager.position(run_id),
        may_rerun=may_run and not run.is_active,
        may_cancel=may_cancel and run.is_active,
        has_failed=any(s.status not in ("succeeded", "skipped") for s in steps),
        now=time.time(),
    )


def _pictures(daemon: Daemon, run: RunRecord, steps: list[StepRecord]) -> tuple[Any, Any]:
    """The run's graph of steps (from its toolchain's snapshot) and its timeline of attempts."""
    from markupsafe import Markup

    from ..toolchains.model import parse_toolchain
    from . import graphs

    order = [s.step_id for s in steps]
    states = {s.step_id: s.status for s in steps}
    folder = daemon.store.run_dir(run.id)
    needs: dict[str, tuple[str, ...]] = {step: () for step in order}
    try:
        text = (folder / "toolchain.yaml").read_text(encoding="utf-8")
        toolchain = parse_toolchain(text, name=run.toolchain, source=f"run {run.id}")
        needs.update({step.id: step.needs for step in toolchain.steps if step.id in needs})
    except (OSError, ToolrunError):
        pass  # drawn without arrows
    spans = logs.attempt_spans(folder / "events.jsonl")
    if spans is None:
        spans = [
            graphs.Span(s.step_id, s.attempts, s.started_at, s.finished_at, s.status)
            for s in steps
            if s.started_at is not None
        ]
    start = run.started_at or run.created_at
    end = run.finished_at or time.time()
    timeline = graphs.timeline_svg(order, spans, start, end) if spans else None
    return Markup(graphs.dag_svg(order, needs, states)), timeline and Markup(timeline)


async def _run_of(request: Request, daemon: Daemon, viewer: Viewer) -> tuple[RunRecord, Caller]:
    """The run a page's path names, and who asks (a 404 page when there is no such run)."""
    run_id = _run_id(request, viewer)
    run = await asyncio.to_thread(daemon.store.get_run, run_id)
    if run is None:
        raise PageError(404, viewer._("There is no run %(id)s.", id=run_id))
    assert viewer.caller is not None
    return run, viewer.caller


@page("run")
async def cancel_run(request: Request, daemon: Daemon, viewer: Viewer) -> Response:
    _ = viewer._
    run, caller = await _run_of(request, daemon, viewer)
    run_id = run.id
    if not caller.has("admin") and run.requester != caller.name:
        raise PageError(403, _("Run %(id)s was started by someone else.", id=run_id))
    if run.status in ACTIVE and not daemon.manager.cancel(run_id):
        await asyncio.to_thread(daemon.store.request_cancel, run_id)
    return RedirectResponse(f"/ui/runs/{run_id}", status_code=303)


@page("run")
async def pause_run(request: Request, daemon: Daemon, viewer: Viewer) -> Response:
    return await _control(request, daemon, viewer, 1)


@page("run")
async def resume_run(request: Request, daemon: Daemon, viewer: Viewer) -> Response:
    return await _control(request, daemon, viewer, 0)


async def _control(request: Request, daemon: Daemon, viewer: Viewer, wanted: int) -> Response:
    """Pause (no further step starts) or resume, as ``toolrun pause`` does; the page shows
    the new state as the run's events say it."""
    _ = viewer._
    run, caller = await _run_of(request, daemon, viewer)
    if not caller.has("admin") and run.requester != caller.name:
        raise PageError(403, _("Run %(id)s was started by someone else.", id=run.id))
    if run.status in ACTIVE:
        await asyncio.to_thread(daemon.store.request_control, run.id, wanted)
        daemon.manager.control(run.id, wanted)
    return RedirectResponse(f"/ui/runs/{run.id}", status_code=303)


@page("run")
async def rerun_run(request: Request, daemon: Daemon, viewer: Viewer) -> Response:
    from ..runs.reruns import NothingToRerun, plan_rerun

    _ = viewer._
    run, caller = await _run_of(request, daemon, viewer)
    run_id = run.id
    if not caller.may_run(run.toolchain):
        raise PageError(403, _("Your token may not run %(name)s.", name=run.toolchain))
    form = await form_of(request)
    try:
        toolchain, params, options = await asyncio.to_thread(
            plan_rerun,
            daemon.store,
            run_id,
            from_failed=form.get("from_failed") == "true",
            toolchain_dirs=daemon.ctx.toolchain_dirs(),
        )
    except NothingToRerun:
        raise PageError(
            409, _("Every step of run %(id)s succeeded; there is nothing to run again.", id=run_id)
        ) from None
    handle = await daemon.submit(caller, toolchain, params, options)
    return RedirectResponse(f"/ui/runs/{handle.id}", status_code=303)


# -- toolchains ---------------------------------------------------------------------------------


@page()
async def toolchains_page(request: Request, daemon: Daemon, viewer: Viewer) -> Response:
    found = await asyncio.to_thread(_toolchains, daemon)
    return html(viewer, "toolchains.html", toolchains=found)


def _toolchains(daemon: Daemon) -> list[tuple[str, Toolchain | None, str | None]]:
    """Every toolchain the daemon finds (the first of a name wins, as for a run), each loaded
    or with the reason it does not load."""
    from ..toolchains.model import load_toolchain, toolchain_files

    found: list[tuple[str, Toolchain | None, str | None]] = []
    for path in toolchain_files(daemon.ctx.toolchain_dirs()):
        try:
            found.append((path.stem, load_toolchain(path), None))
        except ToolrunError as exc:
            found.append((path.stem, None, exc.message.replace(str(path), path.name)))
    return found


async def _toolchain(daemon: Daemon, viewer: Viewer, name: str) -> Toolchain:
    from ..tools.versions import is_tool_name

    if not is_tool_name(name):
        raise PageError(404, viewer._("There is no toolchain %(name)s.", name=name[:40]))
    from ..errors import NotFoundError

    try:
        return await asyncio.to_thread(daemon.ctx.load_toolchain, name)
    except NotFoundError:
        raise PageError(404, viewer._("There is no toolchain %(name)s.", name=name)) from None


@page()
async def toolchain_page(request: Request, daemon: Daemon, viewer: Viewer) -> Response:
    toolchain = await _toolchain(daemon, viewer, request.path_params["name"])
    if request.method == "POST":
        return await _start(request, daemon, viewer, toolchain)
    period = request.query_params.get("period", "7d")
    period = period if period in PERIODS else "7d"
    recent = await asyncio.to_thread(_recent, daemon, toolchain.name, PERIODS[period])
    return _toolchain_form(viewer, toolchain, {}, {}, 200, recent=recent, period=period)


PERIODS = {"1d": 86400.0, "7d": 7 * 86400.0, "30d": 30 * 86400.0}
RECENT_RUNS = 1000


@record(frozen=True)
class Recent:
    """A toolchain's runs over a period, at a glance."""

    runs: int
    finished: int
    succeeded: int
    p50: float | None
    p95: float | None
    chart: Any  # the SVG, or None with no run

    @property
    def success_rate(self) -> float | None:
        return self.succeeded / self.finished if self.finished else None


def _recent(daemon: Daemon, name: str, seconds: float) -> Recent:
    from markupsafe import Markup

    from . import graphs

    runs = daemon.store.list_runs(
        HistoryQuery(toolchain=name, since=time.time() - seconds, limit=RECENT_RUNS)
    )
    finished = [run for run in runs if not run.is_active]
    durations = [run.duration for run in finished if run.duration is not None]
    bars = [graphs.Bar(run.id, run.status, run.duration) for run in reversed(runs[:120])]
    return Recent(
        runs=len(runs),
        finished=len(finished),
        succeeded=sum(run.status == "succeeded" for run in finished),
        p50=graphs.percentile(durations, 0.5),
        p95=graphs.percentile(durations, 0.95),
        chart=Markup(graphs.bars_svg(bars)) if bars else None,
    )


def _toolchain_form(
    viewer: Viewer,
    toolchain: Toolchain,
    given: dict[str, str],
    problems: dict[str, str],
    status: int,
    message: str | None = None,
    *,
    recent: Recent | None = None,
    period: str = "7d",
) -> Response:
    caller = viewer.caller
    assert caller is not None
    may_run = caller.has("run") and caller.may_run(toolchain.name)
    return html(
        viewer,
        "toolchain.html",
        status,
        toolchain=toolchain,
        given=given,
        problems=problems,
        message=message,
        may_run=may_run,
        recent=recent,
        period=period,
        periods=PERIODS,
    )


async def _start(
    request: Request, daemon: Daemon, viewer: Viewer, toolchain: Toolchain
) -> Response:
    from ..daemon.requests import RunRequest

    _ = viewer._
    caller = viewer.caller
    assert caller is not None
    if not caller.has("run"):
        raise PageError(
            403,
            _("Your token may look but not run: it has the scope %(scope)s.", scope=caller.scope),
        )
    form = await form_of(request)
    given = {name: str(form.get(f"param.{name}", "")) for name in toolchain.params}
    params, problems = check_params(toolchain, given, form.getlist("present"), _)
    if problems:
        return _toolchain_form(viewer, toolchain, given, problems, 400)
    try:
        handle = await daemon.start_run(caller, RunRequest(toolchain=toolchain.name, params=params))
    except ToolrunError as exc:
        field = (exc.field or "").removeprefix("params.")
        if field in toolchain.params:
            return _toolchain_form(viewer, toolchain, given, {field: exc.message}, 400)
        return _toolchain_form(viewer, toolchain, given, {}, 400, message=exc.message)
    return RedirectResponse(f"/ui/runs/{handle.id}", status_code=303)


def check_params(
    toolchain: Toolchain, given: dict[str, str], present: list[Any], _: i18n.Translate
) -> tuple[dict[str, Any], dict[str, str]]:
    """The form's values as the params' types, and what is wrong with each, in the viewer's
    words. A checkbox left clear is false; an empty field is the default (or missing)."""
    params: dict[str, Any] = {}
    problems: dict[str, str] = {}
    for name, spec in toolchain.params.items():
        text = given.get(name, "").strip()
        if spec.type == "boolean" and name in present:
            text = "true" if given.get(name) == "true" else "false"
        if text == "":
            if spec.required and spec.default is None:
                problems[name] = _("Required.")
            continue
        try:
            value = convert_param(spec, text)
        except UsageError:
            problems[name] = _type_problem(spec, _)
            continue
        if spec.choices and value not in spec.choices:
            problems[name] = _(
                "Must be one of: %(choices)s.", choices=", ".join(map(str, spec.choices))
            )
            continue
        params[name] = value
    return params, problems


def _type_problem(spec: ParamSpec, _: i18n.Translate) -> str:
    if spec.type == "integer":
        return _("Must be a whole number.")
    if spec.type == "number":
        return _("Must be a number.")
    if spec.type == "boolean":
        return _("Must be true or false.")
    return _("Not a value this field takes.")


# -- tools and workers ------------------------------------------------------------------------


@page()
async def tools_page(request: Request, daemon: Daemon, viewer: Viewer) -> Response:
    installed = await asyncio.to_thread(daemon.ctx.installer.installed)
    problem = None
    try:
        offered = await asyncio.to_thread(daemon.ctx.resolver.available)
        available = {
            name: {version: registry.name for version, registry in versions.items()}
            for name, versions in offered.versions.items()
        }
    except ToolrunError as exc:
        available, problem = {}, exc.message
    caller = viewer.caller
    assert caller is not None
    return html(
        viewer,
        "tools.html",
        installed=installed,
        available=available,
        problem=problem,
        private=caller.has("admin"),
    )


@page()
async def workers_page(request: Request, daemon: Daemon, viewer: Viewer) -> Response:
    from ..daemon.cluster_api import workers_answer

    found = await workers_answer(daemon)
    return html(viewer, "workers.html", cluster=found, now=time.time())


# -- signing in ---------------------------------------------------------------------------------


def _next(value: str | None) -> str:
    """Where to go after signing in: a page of ours, never another site."""
    if value and value.startswith("/ui/") and not value.startswith("//") and "\\" not in value:
        return value
    return "/ui/"


@page(scope=None)
async def login_page(request: Request, daemon: Daemon, viewer: Viewer) -> Response:
    _ = viewer._
    target = _next(request.query_params.get("next"))
    if request.method == "GET":
        return html(viewer, "login.html", target=target, problem=None)
    form = await form_of(request)
    target = _next(str(form.get("next", "")))
    token = daemon.tokens.identify(f"Bearer {str(form.get('token', '')).strip()}")
    if token is None:
        daemon.journal.write(
            "sign_in_refused", client=request.client.host if request.client else None
        )
        return html(
            viewer,
            "login.html",
            401,
            target=target,
            problem=_("That token is not one this daemon knows."),
        )
    session_id = daemon.sessions.open(token)
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        session_id,
        max_age=int(daemon.sessions.lifetime),
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    daemon.journal.write("signed_in", name=token.name)
    return response


@page(scope=None)
async def logout(request: Request, daemon: Daemon, viewer: Viewer) -> Response:
    daemon.sessions.close(request.cookies.get(SESSION_COOKIE))
    response = RedirectResponse("/ui/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE)
    return response


async def root(request: Request) -> Response:
    return RedirectResponse("/ui/", status_code=302)


@page(scope=None)
async def not_found(request: Request, daemon: Daemon, viewer: Viewer) -> Response:
    raise PageError(404, viewer._("There is no page at %(path)s.", path=request.url.path[:80]))
