"""The daemon's side of a cluster: a Dask scheduler hosted in the daemon's event loop (or one
elsewhere, joined), the client that submits attempts, and, with ``--cluster-local``, a worker
in the daemon itself so that steps run here too.

Dask is imported here and in worker.py only: a daemon without ``--cluster``, ``toolrun exec``
and local runs never load it (tests/cluster_test.py checks).
"""

from __future__ import annotations

import logging
import secrets
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError, UsageError
from ..records import record
from .addresses import Address, check_plain, parse_address

if TYPE_CHECKING:
    from distributed import Client, Scheduler, Worker
    from distributed.security import Security

    from ..services import Services
    from .executor import ClusterExecutor
    from .workers import WorkerBook

TOPIC_HISTORY = 32  # messages a hosted scheduler keeps per topic: up to 8 MiB of output
WORKER_TTL = "5s"  # a worker silent this long is lost: checked as often, so noticed within 10 s
CONNECT_TIMEOUT = 10.0
HERE = "here"  # the value of a bare --cluster: host the scheduler in the daemon


@record(frozen=True)
class ClusterOptions:
    join: str | None = None  # a scheduler's address; None: host one in the daemon
    host: str = "127.0.0.1"
    port: int = 8786
    local: bool = False  # --cluster-local: the daemon runs steps too, as one more worker
    wait_for_worker: float = 600.0
    certs: Path | None = None  # --cluster-certs: the daemon/ folder of `toolrun cluster certs`

    def address(self) -> Address:
        if self.join is not None:
            return parse_address(self.join, "--cluster")
        scheme = "tcp" if self.certs is None else "tls"
        return parse_address(f"{scheme}://{self.host}:{self.port}", "--cluster-port")


def check_security(address: Address, certs: Path | None, who: str, option: str) -> None:
    """tls:// takes certificates and tcp:// none; plain TCP only on loopback."""
    check_plain(address, who)
    if address.scheme == "tls" and certs is None:
        raise UsageError(
            f"{who} {address}: tls:// needs {option} DIR, the certificates made by "
            "`toolrun cluster certs`",
            field=option,
        )
    if address.scheme == "tcp" and certs is not None:
        raise UsageError(
            f"{who} {address}: {option} is for tls://; write tls://{address.host}:{address.port}",
            field=option,
        )


def tls_security(
    ca: Path, cert: Path, key: Path, *, scheduler: tuple[Path, Path] | None = None
) -> Security:
    """Dask's mutual TLS: ``cert`` for connecting out (as a client or a worker), and for a
    hosted scheduler its own pair; nothing unencrypted is accepted."""
    from distributed.security import Security

    pairs: dict[str, str] = {
        "tls_client_cert": str(cert),
        "tls_client_key": str(key),
        "tls_worker_cert": str(cert),
        "tls_worker_key": str(key),
    }
    if scheduler is not None:
        pairs.update(tls_scheduler_cert=str(scheduler[0]), tls_scheduler_key=str(scheduler[1]))
    return Security(tls_ca_file=str(ca), require_encryption=True, **pairs)


def configure_dask() -> None:
    """The settings every toolrun scheduler, client and worker share."""
    import dask

    dask.config.set(
        {
            # Dask must never run a tool again by itself: the step's retries decide.
            "distributed.scheduler.allowed-failures": 0,
            "distributed.scheduler.worker-ttl": WORKER_TTL,
            "distributed.scheduler.work-stealing": True,
            "distributed.comm.timeouts.connect": f"{CONNECT_TIMEOUT:g}s",
            # Tools' output is not Dask's data: no spilling, no memory limits to pause at.
            "distributed.worker.memory.target": False,
            "distributed.worker.memory.spill": False,
            "distributed.worker.memory.pause": False,
            "distributed.worker.memory.terminate": False,
            "distributed.admin.system-monitor.gil.enabled": False,
            # A scheduler keeps this many messages of every event topic for ever: output
            # batches are up to 256 KiB, so Dask's 1,000 meant up to 256 MB held in the daemon.
            "distributed.admin.low-level-log-length": TOPIC_HISTORY,
        }
    )


def quiet_dask_logs(handler: logging.Handler | None = None) -> None:
    """Dask says a great deal at INFO; only its warnings are worth a line, in the daemon's
    journal when there is one (its stderr is JSON lines), else on stderr as Dask writes."""
    import distributed  # noqa: F401  (it sets its loggers up when imported)

    log = logging.getLogger("distributed")
    log.setLevel(logging.WARNING)
    if handler is not None:
        log.handlers = [handler]
        log.propagate = False


class HostedCluster:
    """Everything the daemon holds of its cluster, started and closed with the app."""

    def __init__(self, options: ClusterOptions) -> None:
        self.options = options
        self.scheduler: Scheduler | None = None
        self.client: Client | None = None
        self.local_worker: Worker | None = None
        self.book: WorkerBook | None = None
        self.executor: ClusterExecutor | None = None
        # Lets workers read the daemon's /registry/ tree when callers need tokens.
        self.registry_token = secrets.token_urlsafe(24)

    @property
    def scheduler_address(self) -> str:
        if self.scheduler is not None:
            return str(self.scheduler.address)
        return str(self.options.address())

    async def start(
        self, ctx: Services, registry_url: str | None, log: logging.Handler | None = None
    ) -> ClusterExecutor:
        import asyncio

        from distributed import Client, Scheduler

        from .executor import ClusterExecutor, ClusterSettings
        from .workers import WorkerBook

        address = self.options.address()
        check_security(address, self.options.certs, "--cluster", "--cluster-certs")
        security = None
        if self.options.certs is not None:
            from .certs import daemon_certs

            certs = daemon_certs(self.options.certs)
            security = tls_security(
                certs.ca,
                certs.client_cert,
                certs.client_key,
                scheduler=(certs.scheduler_cert, certs.scheduler_key),
            )
        configure_dask()
        quiet_dask_logs(log)
        if self.options.join is None:
            try:
                self.scheduler = await Scheduler(
                    host=address.host,
                    port=address.port,
                    protocol=address.scheme,
                    security=security,
                    dashboard=False,
                    dashboard_address=f"{address.host}:0",  # its /health, on no fixed port
                    allowed_failures=0,
                    worker_ttl=WORKER_TTL,
                )
            except OSError as exc:
                raise ConfigError(
                    f"--cluster-port {address.port}: cannot listen on {address.host}: {exc}"
                ) from None
        try:
            client = await asyncio.wait_for(
                Client(
                    self.scheduler_address,
                    asynchronous=True,
                    set_as_default=False,
                    security=security,
                ),
                CONNECT_TIMEOUT + 1,
            )
        except (OSError, TimeoutError) as exc:
            await self.close()
            raise ConfigError(
                f"--cluster {self.scheduler_address}: no scheduler answers there "
                f"within {CONNECT_TIMEOUT:g}s ({exc.__class__.__name__})"
            ) from None
        self.client = client
        if self.scheduler is None:
            await client.run_on_scheduler(_no_reruns)
        self.book = WorkerBook(client, self.scheduler)
        settings = ClusterSettings(
            wait_for_worker=self.options.wait_for_worker,
            registry=registry_url,
            registry_token=self.registry_token,
            workspace_cap=int(ctx.config.get("cluster_workspace_cap")),
        )
        self.executor = ClusterExecutor(client, self.book, settings)
        if self.options.local:
            from .worker import start_worker

            self.local_worker = await start_worker(
                ctx, self.scheduler_address, name="daemon", labels={}, slots=1, security=security
            )
        return self.executor

    async def close(self) -> None:
        import contextlib

        if self.local_worker is not None:
            with contextlib.suppress(Exception):
                await self.local_worker.close()
        if self.client is not None:
            with contextlib.suppress(Exception):
                await self.client.close()
        if self.scheduler is not None:
            with contextlib.suppress(Exception):
                await self.scheduler.close()


def _no_reruns(dask_scheduler: Any) -> None:
    """Run on a joined scheduler: a lost worker's task is never given to another by Dask."""
    dask_scheduler.allowed_failures = 0
