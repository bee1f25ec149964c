"""Serving the app with uvicorn, and stopping it without losing a run.

On SIGTERM (or Ctrl+C) the daemon stops taking runs (503), lets the running ones finish within
the grace period, cancels and records what is left, then exits 0. A second signal skips the
wait. After a SIGKILL nothing can be done at the time; the next start marks the runs the dead
daemon owned as ``interrupted`` (their owner locks are free).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import socket
from types import FrameType
from typing import TYPE_CHECKING

import uvicorn

from ..errors import ToolrunError, UsageError
from ..loopback import is_loopback
from .app import create_app
from .core import Daemon, DaemonSettings
from .journal import Journal, JournalHandler

if TYPE_CHECKING:
    from ..services import Services


class DaemonServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, daemon: Daemon) -> None:
        super().__init__(config)
        self.daemon = daemon
        self._loop: asyncio.AbstractEventLoop | None = None
        self._drain_task: asyncio.Task[None] | None = None
        self._stopping = False

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        self._loop = asyncio.get_running_loop()
        await self.daemon.start_cluster()
        await super().startup(sockets)
        # What start-up built lives as long as the daemon: frozen, the collector's full passes
        # no longer walk it.
        gc.freeze()

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        await super().shutdown(sockets)
        await self.daemon.stop_cluster()

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        # uvicorn would stop at once and re-raise the signal; we drain first and exit 0.
        if self._loop is None or self._stopping:
            self.should_exit = True  # a second signal skips the wait
            return
        self._stopping = True
        self.daemon.journal.write("stopping", signal=sig, grace=self.daemon.settings.grace)
        self._loop.call_soon_threadsafe(self._begin_drain)

    def _begin_drain(self) -> None:
        self._drain_task = asyncio.ensure_future(self._drain())

    async def _drain(self) -> None:
        cancelled = await self.daemon.manager.drain(self.daemon.settings.grace)
        self.daemon.journal.write("drained", cancelled=cancelled)
        self.daemon.stop_watchers()
        self.should_exit = True


LOOPS = ("auto", "asyncio", "uvloop")


def check_settings(settings: DaemonSettings, token_count: int) -> None:
    if not is_loopback(settings.host) and token_count == 0:
        raise UsageError(
            f"refusing to listen on {settings.host} without tokens: anyone who can reach it "
            "could run tools",
            hint="create one with `toolrun daemon token create NAME`, or keep --host 127.0.0.1",
        )
    if (settings.tls_cert is None) != (settings.tls_key is None):
        raise UsageError("--tls-cert and --tls-key go together")
    for path in (settings.tls_cert, settings.tls_key):
        if path is not None and not path.is_file():
            raise UsageError(f"{path}: no such file")
    if settings.tls_cert is not None and settings.tls_key is not None:
        import ssl

        # Loaded once here, so that a wrong pair fails before the daemon says it listens.
        try:
            ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(
                settings.tls_cert, settings.tls_key
            )
        except (OSError, ssl.SSLError) as exc:
            raise UsageError(
                f"--tls-cert {settings.tls_cert} and --tls-key {settings.tls_key} are not a "
                f"certificate and its key ({exc.__class__.__name__}: {exc}); are they swapped?"
            ) from None
    if settings.loop not in LOOPS:
        raise UsageError(f"--loop must be one of {', '.join(LOOPS)}, not {settings.loop!r}")
    if settings.loop == "uvloop":
        try:
            import uvloop  # noqa: F401
        except ImportError:
            message = "--loop uvloop: uvloop is not installed (pip install uvloop)"
            raise UsageError(message) from None
    if settings.max_parallel < 1 or settings.queue < 0:
        raise UsageError("--max-parallel must be at least 1 and --queue at least 0")


def listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # Naming the protocol matters: asyncio turns Nagle off (TCP_NODELAY) only on sockets that
    # say IPPROTO_TCP, and with Nagle on every keep-alive answer waited 40 ms for an ACK.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        sock.bind((host.strip("[]"), port))
    except OSError as exc:
        sock.close()
        raise ToolrunError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def serve(ctx: Services, settings: DaemonSettings) -> None:
    check_settings(settings, len(ctx.config.tokens))
    sock = listen(settings.host, settings.port)
    journal = Journal(settings.log_file)
    server_log = logging.getLogger("uvicorn.error")
    server_log.handlers = [JournalHandler(journal)]
    server_log.setLevel(logging.WARNING)
    server_log.propagate = False
    daemon = Daemon(ctx, settings, journal)
    ctx.store.checkpoint_in_background()
    from .trailers import enable as enable_trailers

    enable_trailers()
    config = uvicorn.Config(
        create_app(daemon),
        ssl_certfile=str(settings.tls_cert) if settings.tls_cert else None,
        ssl_keyfile=str(settings.tls_key) if settings.tls_key else None,
        log_config=None,
        access_log=False,
        # Forwarded-for headers would let any local process write the requester of its runs.
        proxy_headers=False,
        server_header=False,
        timeout_graceful_shutdown=3,
        lifespan="on",
        loop=settings.loop,
        # h11, whichever other server is installed: it is the one taught trailers (trailers.py)
        http="h11",
    )
    host, port = sock.getsockname()[:2]
    scheme = "https" if settings.tls_cert else "http"
    shown = f"[{host}]" if ":" in host else host
    daemon.url = f"{scheme}://{shown}:{port}"
    journal.write(
        "listening",
        url=f"{scheme}://{shown}:{port}",
        max_parallel=settings.max_parallel,
        queue=settings.queue,
        tokens=len(ctx.config.tokens),
    )
    DaemonServer(config, daemon).run(sockets=[sock])
    ctx.store.close()
    journal.write("stopped")
    journal.close()
