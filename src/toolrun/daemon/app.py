"""The Starlette application: routes, errors as JSON, one log line per request."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..dashboard import pages
from ..errors import ToolrunError
from . import api, cluster_api, hooks_api, seed
from .automation import delivery_loop_for, scheduler_for, update_checks
from .core import Daemon, HttpError, http_error_for
from .origin import ServedHosts, refusal


def create_app(daemon: Daemon) -> Starlette:
    routes = [
        Route("/cmd", seed.cmd_post, methods=["POST"]),
        Route("/cmd/{path:path}", seed.cmd_get, methods=["GET"]),
        Route("/result/help", seed.help_page, methods=["GET"]),
        Route("/result/{run_id}", seed.result, methods=["GET"]),
        # One route per path, so that a 405 lists every method the path has (Allow).
        Route("/api/v1/runs", api.runs, methods=["GET", "POST"]),
        Route("/api/v1/runs/{run_id}", api.get_run, methods=["GET"]),
        Route("/api/v1/runs/{run_id}/cancel", api.cancel_run, methods=["POST"]),
        Route("/api/v1/runs/{run_id}/rerun", api.rerun_run, methods=["POST"]),
        Route("/api/v1/runs/{run_id}/pause", api.pause_run, methods=["POST"]),
        Route("/api/v1/runs/{run_id}/resume", api.resume_run, methods=["POST"]),
        Route("/api/v1/runs/{run_id}/events", api.run_events_sse, methods=["GET"]),
        Route("/api/v1/runs/{run_id}/log", api.run_log, methods=["GET"]),
        Route("/api/v1/runs/{run_id}/artifacts", api.list_artifacts, methods=["GET"]),
        Route("/api/v1/runs/{run_id}/artifacts/{path:path}", api.get_artifact, methods=["GET"]),
        Route("/api/v1/events", api.all_events, methods=["GET"]),
        Route("/api/v1/tools", api.list_tools, methods=["GET"]),
        Route("/api/v1/toolchains", api.list_toolchains, methods=["GET"]),
        Route("/api/v1/workers", cluster_api.workers, methods=["GET"]),
        Route("/registry/{path:path}", cluster_api.registry_file, methods=["GET"]),
        Route("/hooks/{name}", hooks_api.deliver, methods=["POST"]),
        Route("/healthz", api.healthz, methods=["GET"]),
        Route("/metrics", api.metrics, methods=["GET"]),
        Route("/openapi.json", api.openapi, methods=["GET"]),
        # The pages for people (dashboard/): HTML, sign-in by session cookie, forms with CSRF.
        Route("/", pages.root, methods=["GET"]),
        Route("/ui/", pages.runs_page, methods=["GET"]),
        Route("/ui/runs/{run_id}", pages.run_page, methods=["GET"]),
        Route("/ui/runs/{run_id}/cancel", pages.cancel_run, methods=["POST"]),
        Route("/ui/runs/{run_id}/rerun", pages.rerun_run, methods=["POST"]),
        Route("/ui/runs/{run_id}/pause", pages.pause_run, methods=["POST"]),
        Route("/ui/runs/{run_id}/resume", pages.resume_run, methods=["POST"]),
        Route("/ui/toolchains", pages.toolchains_page, methods=["GET"]),
        Route("/ui/toolchains/{name}", pages.toolchain_page, methods=["GET", "POST"]),
        Route("/ui/tools", pages.tools_page, methods=["GET"]),
        Route("/ui/workers", pages.workers_page, methods=["GET"]),
        Route("/ui/login", pages.login_page, methods=["GET", "POST"]),
        Route("/ui/logout", pages.logout, methods=["POST"]),
        Mount("/ui/static", StaticFiles(directory=pages.STATIC_DIR), name="static"),
        Route("/ui/{path:path}", pages.not_found, methods=["GET", "POST"]),
    ]

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        daemon.journal.write("started", runs_interrupted=daemon.interrupted_at_start)
        sweep = asyncio.ensure_future(daemon.keep_watchers_alive())
        background = [
            asyncio.ensure_future(scheduler_for(daemon).run()),
            asyncio.ensure_future(update_checks(daemon)),
        ]
        sender = delivery_loop_for(daemon)
        if sender is not None:
            background.append(asyncio.ensure_future(sender.run()))
        yield
        sweep.cancel()
        for task in background:
            task.cancel()
        # Whatever is still going when the server stops is cancelled and recorded.
        await daemon.manager.drain(0)
        daemon.stop_watchers()

    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={
            ToolrunError: _toolrun_error,
            HttpError: _http_error,
            HTTPException: _starlette_error,
        },
    )
    app.state.daemon = daemon
    # /api/v1/runs/ is not /api/v1/runs: a 404, not a redirect whose Location the Host header
    # would choose.
    app.router.redirect_slashes = False
    app.add_middleware(RequestGuard, hosts=daemon.hosts)
    app.add_middleware(RequestLog, daemon=daemon)
    return app


async def _toolrun_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ToolrunError)
    return http_error_for(exc).response()


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HttpError)
    return exc.response()


async def _starlette_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    codes = {404: "not_found", 405: "method_not_allowed"}
    return JSONResponse(
        {"error": codes.get(exc.status_code, "error"), "message": exc.detail},
        status_code=exc.status_code,
        headers=exc.headers,
    )


METHODS = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}


def _streams_or_runs(path: str) -> bool:
    """Paths whose GET starts a run (``/cmd/...``) or may stream for as long as a run goes."""
    return path.startswith(("/cmd/", "/result/")) or path.endswith("/events")


class RequestGuard:
    """Refuses what no endpoint should see, before any endpoint does.

    - A request sent to a name the daemon does not serve (DNS rebinding), or coming from
      another site through a browser (see ``origin.py``).
    - HEAD where GET starts a run or streams until a run ends: Starlette answers HEAD like
      GET, so a link checker would have started tools.
    - A body framed twice (Content-Length and Transfer-Encoding): a proxy in front may read
      it one way and uvicorn the other, which is how requests get smuggled.
    """

    def __init__(self, app: ASGIApp, hosts: ServedHosts) -> None:
        self.app = app
        self.hosts = hosts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            answer = self.refusal(scope)
            if answer is not None:
                await answer(scope, receive, send)
                return
        await self.app(scope, receive, send)

    def refusal(self, scope: Scope) -> Response | None:
        wanted = {b"host", b"origin", b"sec-fetch-site", b"sec-fetch-mode", b"sec-fetch-dest"}
        headers = {
            name.lower().decode("latin-1"): value.decode("latin-1")
            for name, value in scope["headers"]
            if name.lower() in wanted
        }
        refused = refusal(scope["path"], scope["scheme"], headers, self.hosts, scope["method"])
        if refused is not None:
            code, message = refused
            return HttpError(403, code, message).response()
        if scope["method"] == "HEAD" and _streams_or_runs(scope["path"]):
            return JSONResponse(
                {"error": "method_not_allowed", "message": f"HEAD {scope['path']}: use GET"},
                status_code=405,
                headers={"Allow": "GET"},
            )
        names = {name.lower() for name, _ in scope["headers"]}
        if b"content-length" in names and b"transfer-encoding" in names:
            return JSONResponse(
                {
                    "error": "bad_request",
                    "message": "give Content-Length or Transfer-Encoding, not both",
                    "field": "Content-Length",
                },
                status_code=400,
            )
        return None


class RequestLog:
    """One JSON line per request: method, path, status, time taken, client and caller."""

    def __init__(self, app: ASGIApp, daemon: Daemon) -> None:
        self.app = app
        self.daemon = daemon

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def remember(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, remember)
        finally:
            client = scope.get("client")
            state = scope.get("state") or {}
            # Methods outside the known ones share a label: a caller must not grow /metrics.
            method = scope["method"] if scope["method"] in METHODS else "other"
            self.daemon.metrics.request(method, status)
            self.daemon.journal.write(
                "request",
                method=scope["method"],
                path=scope["path"],
                status=status,
                ms=round((time.perf_counter() - started) * 1000, 2),
                client=client[0] if client else None,
                caller=state.get("caller"),
            )
