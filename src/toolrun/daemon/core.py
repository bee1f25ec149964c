"""What every endpoint shares: the daemon's state, who is calling, starting a run, and errors
turned into a status with a JSON body."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import defaultdict
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from msgspec import UNSET
from starlette.requests import Request
from starlette.responses import JSONResponse

from .. import __version__
from ..automation.hooks import hooks_from_config
from ..dashboard.sessions import SESSION_COOKIE, Sessions
from ..errors import (
    ConfigError,
    IntegrityError,
    NotFoundError,
    RegistryUnavailable,
    StorageError,
    ToolrunError,
    UsageError,
)
from ..history.store import check_run_id
from ..policy import check_relative_arg
from ..records import record, replace
from ..runs.engine import RunHandle, RunOptions, exec_toolchain
from ..selectors import Unplaceable
from ..toolchains.model import Toolchain
from ..tools.lockfile import LockInUse, LockRefused, lock_for_run
from ..tools.versions import MAX_NAME, is_tool_name
from .answers import Error, Health, plain
from .auth import Caller, TokenBook
from .bodies import BadRequest
from .journal import Journal
from .metrics import Metrics
from .origin import WILDCARDS, ServedHosts, machine_names, normal_host, served_hosts
from .requests import RunRequest
from .runs import QueueFull, RunManager, ShuttingDown, Transition
from .streams import KEEPALIVE_SECONDS

KEEPALIVE_MARK = object()  # put in a daemon-wide stream's queue: send a keepalive

if TYPE_CHECKING:
    from ..cluster.hosting import ClusterOptions, HostedCluster
    from ..services import Services
    from .registry_tree import ServedTree

RETRY_AFTER_SECONDS = 5


@record
class DaemonSettings:
    host: str = "127.0.0.1"
    port: int = 8080
    max_parallel: int = 4
    queue: int = 100
    grace: float = 30.0
    tls_cert: Path | None = None
    tls_key: Path | None = None
    log_file: Path | None = None
    allow_hosts: tuple[str, ...] = ()  # --allow-host, beside allow_hosts in config.toml
    loop: str = "auto"  # uvicorn's: uvloop where it is installed, else asyncio's own
    cluster: ClusterOptions | None = None  # --cluster: steps run on Dask workers


class HttpError(Exception):
    """An answer other than success, with the JSON body that explains it."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        field: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.field = field
        self.headers = headers or {}

    def response(self) -> JSONResponse:
        body = Error(error=self.code, message=self.message, field=self.field or UNSET)
        return AsciiJSONResponse(plain(body), status_code=self.status, headers=self.headers)


class AsciiJSONResponse(JSONResponse):
    """JSON with every non-ASCII character escaped: an error may quote whatever it was sent."""

    def render(self, content: Any) -> bytes:
        return json.dumps(content, separators=(",", ":")).encode("ascii")


def http_error_for(exc: ToolrunError) -> HttpError:
    """The status a toolrun error answers with."""
    if isinstance(exc, HttpError):
        return exc
    if isinstance(exc, BadRequest):
        code = "too_large" if exc.status == 413 else "bad_request"
        return HttpError(exc.status, code, exc.message, field=exc.field)
    if isinstance(exc, QueueFull):
        headers = {"Retry-After": str(RETRY_AFTER_SECONDS)}
        return HttpError(429, "queue_full", exc.message, headers=headers)
    if isinstance(exc, Unplaceable):
        return HttpError(409, "unplaceable", exc.message)
    if isinstance(exc, ShuttingDown):
        return HttpError(503, "shutting_down", exc.message)
    if isinstance(exc, UsageError):
        return HttpError(400, "bad_request", exc.message, field=exc.field)
    if isinstance(exc, NotFoundError):
        return HttpError(404, "not_found", exc.message)
    if isinstance(exc, LockRefused):
        return HttpError(409, "locked", exc.message, field="locked")
    if isinstance(exc, (RegistryUnavailable, IntegrityError)):
        return HttpError(502, "registry", exc.message)
    if isinstance(exc, StorageError):
        return HttpError(507, "storage", exc.message)
    if isinstance(exc, ConfigError):
        return HttpError(500, "server_config", exc.message)
    return HttpError(500, "error", exc.message)


class Daemon:
    """The engine, the store and the run manager, shared by every request."""

    def __init__(self, ctx: Services, settings: DaemonSettings, journal: Journal | None = None):
        self.ctx = ctx
        self.settings = settings
        self.store = ctx.store
        self.interrupted_at_start = ctx.interrupted
        self.manager = RunManager(
            ctx.engine, max_parallel=settings.max_parallel, queue=settings.queue
        )
        self.tokens = TokenBook(ctx.config.tokens)
        self.hooks = hooks_from_config(ctx.config)  # POST /hooks/NAME (hooks_api.py)
        self.hook_locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        self.notifier = ctx.notifier  # config.toml's [[notify]] read now: wrong, no start
        self.sessions = Sessions()  # browsers signed in with a token (dashboard/)
        self.changes = 0  # runs started or ended by this daemon, counted
        self.hosts = daemon_hosts(settings, ctx.config.get("allow_hosts"))
        self.metrics = Metrics()
        self.journal = journal or Journal(settings.log_file)
        self.watchers: set[asyncio.Queue[Any]] = set()  # Transition, KEEPALIVE_MARK or None
        self.manager.on_transition(self._transition)
        self.url = f"http://{settings.host}:{settings.port}"  # serve() sets the one bound
        self.cluster: HostedCluster | None = None
        if settings.cluster is not None:
            from ..cluster.hosting import HostedCluster

            self.cluster = HostedCluster(settings.cluster)

    async def start_cluster(self) -> None:
        """Host or join the cluster; from now on every step runs on its workers."""
        if self.cluster is None:
            return
        from .journal import JournalHandler

        executor = await self.cluster.start(
            self.ctx, f"{self.url}/registry/", JournalHandler(self.journal)
        )
        self.ctx.engine.executor = executor
        self.journal.write(
            "cluster",
            scheduler=self.cluster.scheduler_address,
            hosted=self.cluster.scheduler is not None,
            local_worker=self.cluster.local_worker is not None,
        )

    @cached_property
    def served_tree(self) -> ServedTree:
        from .registry_tree import ServedTree

        return ServedTree(self.ctx.installer, self.ctx.paths.cache_dir)

    async def stop_cluster(self) -> None:
        if self.cluster is not None:
            await self.cluster.close()

    def _transition(self, change: Transition) -> None:
        self.metrics.record(change)
        self.changes += 1  # pages cached before this are stale (dashboard/pages.py)
        self.journal.write(
            "run",
            id=change.run_id,
            toolchain=change.toolchain,
            status=change.status,
            requester=change.requester,
            duration=change.duration,
        )
        for queue in list(self.watchers):
            try:
                queue.put_nowait(change)
            except asyncio.QueueFull:
                # A reader this far behind is ended rather than let it grow without bound.
                self.watchers.discard(queue)
                queue.get_nowait()
                queue.put_nowait(None)

    async def keep_watchers_alive(self, every: float = KEEPALIVE_SECONDS) -> None:
        """Every ``every`` seconds, a keepalive to each reader of the daemon-wide stream that
        has room for it (one sweep for all of them, run for the daemon's life)."""
        while True:
            await asyncio.sleep(every)
            for queue in list(self.watchers):
                with contextlib.suppress(asyncio.QueueFull):
                    queue.put_nowait(KEEPALIVE_MARK)

    def stop_watchers(self) -> None:
        for queue in list(self.watchers):
            while queue.full():
                queue.get_nowait()
            queue.put_nowait(None)

    # -- who is calling ------------------------------------------------------------------------

    def authorize(self, request: Request, scope: str) -> Caller:
        client = request.client.host if request.client else "unknown"
        if not self.tokens.required:
            caller = Caller(client, "admin")
        else:
            token = self.tokens.identify(request.headers.get("authorization"))
            session = None
            if token is None and request.method == "GET":
                # A signed-in browser reads with its session: an EventSource, a download link
                # cannot send a header. Only reads: a change goes through a page's form.
                session = self.sessions.get(request.cookies.get(SESSION_COOKIE), self.tokens.tokens)
            if session is not None:
                caller = Caller(session.name, session.scope, session.allow)
            elif token is None:
                raise HttpError(
                    401,
                    "unauthorized",
                    "a valid token is required: send 'Authorization: Bearer <token>'",
                    headers={"WWW-Authenticate": "Bearer"},
                )
            else:
                caller = Caller(token.name, token.scope, token.allow)
        request.state.caller = caller.name
        if not caller.has(scope):
            raise HttpError(
                403,
                "forbidden",
                f"token {caller.name!r} has scope {caller.scope!r}; this needs {scope!r}",
            )
        return caller

    # -- starting runs -------------------------------------------------------------------------

    async def start_run(self, caller: Caller, wanted: RunRequest) -> RunHandle:
        if not caller.may_run(wanted.target):
            field = "toolchain" if wanted.toolchain else "cmd"
            raise HttpError(
                403,
                "forbidden",
                f"token {caller.name!r} may not run {wanted.target!r}",
                field=field,
            )
        for index, arg in enumerate(wanted.args):
            try:
                check_relative_arg(arg)
            except UsageError as exc:
                raise BadRequest(f"args[{index}]: {exc.message}", field="args") from None
        if wanted.toolchain:  # a file to read and parse
            toolchain = await asyncio.to_thread(self._toolchain_for, wanted)
        else:
            toolchain = self._toolchain_for(wanted)
        for name, value in wanted.params.items():
            if isinstance(value, str):
                try:
                    check_relative_arg(value)
                except UsageError as exc:
                    raise BadRequest(
                        f"params.{name}: {exc.message}", field=f"params.{name}"
                    ) from None
        lock = await self.lock_for(toolchain, wanted.locked) if wanted.toolchain else None
        options = RunOptions(
            timeout=wanted.timeout,
            caller_env=wanted.env,
            runs_on=wanted.runs_on,
            priority=wanted.priority,
            lock=lock,
        )
        field = "cmd" if wanted.cmd else "toolchain"
        return await self.submit(caller, toolchain, wanted.params, options, field=field)

    async def submit(
        self,
        caller: Caller,
        toolchain: Toolchain,
        params: dict[str, Any],
        options: RunOptions,
        *,
        field: str = "toolchain",
    ) -> RunHandle:
        """Record and start (or queue) a run for a remote caller, under the remote rules."""
        options = replace(options, origin="daemon", requester=caller.name, remote=True)
        try:
            return await self.manager.submit(toolchain, params, options)
        except NotFoundError as exc:
            # An unknown tool or version: 404, as the seed answers for what does not exist,
            # so `toolrun --remote` exits 4 as the local command does.
            raise HttpError(404, "not_found", exc.message, field=field) from None
        except UsageError as exc:
            if isinstance(exc, BadRequest | Unplaceable):
                raise
            at_fault = exc.field or ("env" if exc.message.startswith("env:") else None)
            raise BadRequest(exc.message, field=at_fault) from None

    async def lock_for(self, toolchain: Toolchain, asked: bool | None) -> LockInUse | None:
        """The lock a toolchain's run keeps to: when the request asks for it, or (asking
        nothing) when config.toml's ``locked`` is on, as for ``toolrun run``."""
        if not (asked if asked is not None else bool(self.ctx.config.get("locked"))):
            return None
        return await asyncio.to_thread(lock_for_run, toolchain.path, toolchain.sha256)

    def _toolchain_for(self, wanted: RunRequest) -> Toolchain:
        if wanted.toolchain:
            try:
                return self.ctx.load_toolchain(wanted.toolchain)
            except NotFoundError as exc:
                raise HttpError(404, "not_found", exc.message, field="toolchain") from None
        assert wanted.cmd is not None
        if not is_tool_name(wanted.cmd):
            raise BadRequest(f"cmd {wanted.cmd!r} must be a tool name", field="cmd")
        spec = f"{wanted.cmd}@{wanted.version}" if wanted.version else wanted.cmd
        try:
            return exec_toolchain(spec, wanted.args)
        except UsageError as exc:
            raise BadRequest(exc.message, field="version") from None

    async def toolchain_exists(self, name: str) -> None:
        """404 for a toolchain this daemon cannot find; 400 for a name that is not one."""
        from ..toolchains.model import find_toolchain

        if not is_tool_name(name):
            raise BadRequest(
                f"toolchain {name[:40]!r} must be a plain name of at most {MAX_NAME} characters",
                field="toolchain",
            )
        try:
            await asyncio.to_thread(find_toolchain, name, self.ctx.toolchain_dirs())
        except NotFoundError as exc:
            raise HttpError(404, "not_found", exc.message, field="toolchain") from None

    def run_or_404(self, run_id: str) -> str:
        try:
            check_run_id(run_id)
        except NotFoundError as exc:
            raise HttpError(404, "not_found", exc.message) from None
        return run_id

    def health(self) -> Health:
        return Health(
            status="draining" if self.manager.draining else "ok",
            version=__version__,
            running=len(self.manager.running),
            queued=self.manager.queued,
        )


def daemon_hosts(settings: DaemonSettings, configured: tuple[str, ...]) -> ServedHosts:
    """The names this daemon answers to: see ``origin.py``."""
    wildcard = normal_host(settings.host) in WILDCARDS
    return served_hosts(
        settings.host,
        (*settings.allow_hosts, *configured),
        machine_names() if wildcard else (),
    )


TRUE_FLAGS = ("true", "1", "yes", "")  # "" is the bare ?name
FALSE_FLAGS = ("false", "0", "no")


def query_value(request: Request, name: str, default: str | None = None) -> str | None:
    """A query parameter's one value; given twice it is a 400 (which one was meant?)."""
    values = request.query_params.getlist(name)
    if len(values) > 1:
        raise BadRequest(f"?{name}= is given {len(values)} times; give it once", field=name)
    return values[0] if values else default


def query_flag(request: Request, name: str, *, default: bool = False) -> bool:
    """``?name=true`` (also 1, yes, or the bare ``?name``; false, 0, no); anything else is a
    400. As the OpenAPI document lists them: exactly these, in lower case."""
    value = query_value(request, name)
    if value is None:
        return default
    if value in TRUE_FLAGS:
        return True
    if value in FALSE_FLAGS:
        return False
    raise BadRequest(f"?{name}= must be true or false, not {value[:40]!r}", field=name)


def last_event_id(request: Request) -> int:
    """Where a reconnecting SSE client left off (header, or ``?last_event_id=``)."""
    raw = request.headers.get("last-event-id")
    if raw is None:
        raw = query_value(request, "last_event_id", "0") or ""
    raw = raw.strip(" ")
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 15):
        raise BadRequest(
            f"Last-Event-ID must be an event id (a whole number of up to 15 digits), not {raw!r}",
            field="Last-Event-ID",
        )
    return int(raw)
