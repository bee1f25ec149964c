"""``toolrun worker``: a Dask worker that runs toolrun steps, with its own TOOLRUN_HOME.

It joins the scheduler saying its labels (the machine's ``os=`` and ``arch=`` beside those
given) and its slots (a Dask resource: a step takes one), then runs what it is sent
(worker_task.py) until SIGTERM, Ctrl+C, or the scheduler's loss past ``--timeout``.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import ssl
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import __version__
from ..errors import ConfigError, UsageError
from ..records import record
from ..selectors import machine_labels, parse_labels
from . import worker_task
from .addresses import Address, parse_address
from .spec import LABELS_KEY, SLOT

if TYPE_CHECKING:
    from distributed import Worker
    from distributed.security import Security

    from ..services import Services
    from ..tools.registry import Registry


class SchedulerUnreachable(ConfigError):
    """No scheduler answered at the address within the time given (exit 3)."""


class CertificateRefused(ConfigError):
    """The TLS handshake with the scheduler failed: one side's certificate is not the CA's."""


@record(frozen=True)
class WorkerOptions:
    address: str
    labels: list[str]
    slots: int = 1
    name: str | None = None
    registries: list[str] | None = None
    timeout: float = 30.0
    certs: Path | None = None  # --certs: a workers/NAME folder of `toolrun cluster certs`


def worker_labels(given: list[str]) -> dict[str, str]:
    """The machine's labels and the given ones; the machine's own cannot be overridden."""
    labels = parse_labels(given, "--label")
    own = machine_labels()
    for key, value in own.items():
        if key in labels and labels[key] != value:
            raise UsageError(
                f"--label {key}={labels[key]}: this machine is {key}={value}, which toolrun "
                "sets itself",
                field="--label",
            )
    return {**labels, **own}


def worker_registries(locations: list[str]) -> list[Registry]:
    from ..tools.registry import FolderRegistry, HttpRegistry

    found: list[Registry] = []
    for index, location in enumerate(locations):
        name = f"worker-{index + 1}"
        if location.startswith(("http://", "https://")):
            found.append(HttpRegistry(name, location, timeout=30.0))
        else:
            folder = Path(location).expanduser()
            if not folder.is_dir():
                raise UsageError(f"--registry {location}: not a folder or an http(s):// URL")
            found.append(FolderRegistry(name, folder.resolve()))
    return found


def default_name() -> str:
    import os
    import socket

    return f"{socket.gethostname()}-{os.getpid()}"


async def start_worker(
    ctx: Services,
    address: str,
    *,
    name: str,
    labels: dict[str, str],
    slots: int,
    registries: list[Registry] | None = None,
    timeout: float = 30.0,
    security: Security | None = None,
) -> Worker:
    """Start a worker in this event loop and join ``address``."""
    from distributed import Worker

    from .hosting import configure_dask, quiet_dask_logs

    configure_dask()
    quiet_dask_logs()
    labels = {**labels, **machine_labels()}
    worker_task.HOME = worker_task.WorkerHome(
        name=name,
        runs_dir=ctx.paths.data_dir / "worker" / "runs",
        installer=ctx.installer,
        registries=registries if registries is not None else list(ctx.registries),
        kill_grace=float(ctx.config.get("kill_grace")),
    )
    said = {"labels": labels, "slots": slots, "version": __version__}
    local_dir = ctx.paths.data_dir / "worker" / "dask"
    local_dir.mkdir(parents=True, exist_ok=True)
    worker = Worker(
        address,
        name=name,
        # One thread per slot runs steps (the resource keeps Dask from giving it more), and
        # one more packs and unpacks workspaces while every slot is busy.
        nthreads=slots + 1,
        resources={SLOT: slots},
        startup_information={LABELS_KEY: lambda _worker: said},
        dashboard=False,
        memory_limit=0,
        death_timeout=timeout,
        local_directory=str(local_dir),
        security=security,
    )
    try:
        await asyncio.wait_for(worker.start(), timeout + 5)
    except (OSError, TimeoutError) as exc:
        await _close_quietly(worker)
        raise SchedulerUnreachable(
            f"no scheduler answered at {address} within {timeout:g}s "
            f"({exc.__class__.__name__}: {exc})".rstrip(": )")
            + ")"
        ) from None
    return worker


def tls_refusal(address: Address, context: ssl.SSLContext, wait: float = 0.5) -> str | None:
    """Why a TLS handshake with the scheduler fails, or None: it passed, or nothing answered
    (Dask's own timeout says that). A server refusing the client's certificate says so after
    the client's side of a TLS 1.3 handshake is done, so a short read follows it."""
    import socket
    import ssl

    try:
        with (
            socket.create_connection((address.host, address.port), timeout=5) as raw,
            context.wrap_socket(raw) as tls,
        ):
            tls.settimeout(wait)
            try:
                if tls.recv(1) == b"":
                    return "it closed the connection after the handshake"
            except TimeoutError:
                return None  # it waits for the worker to speak: it took the certificate
    except ssl.SSLError as exc:
        return str(exc.reason or exc).replace("_", " ").lower()
    except OSError:
        return None
    return None


async def _close_quietly(worker: Any) -> None:
    import contextlib

    with contextlib.suppress(Exception):
        await worker.close(timeout=2)


def run_worker(ctx: Services, options: WorkerOptions) -> None:
    """The ``toolrun worker`` command: start, say so on stderr, serve until told to stop."""
    import sys

    from .hosting import check_security, tls_security

    address = parse_address(options.address)
    check_security(address, options.certs, "toolrun worker", "--certs")
    security = None
    if options.certs is not None:
        from .certs import worker_certs

        certs = worker_certs(options.certs)
        security = tls_security(certs.ca, certs.cert, certs.key)
        # Dask retries a failed handshake until its timeout and then says only that; a
        # handshake of our own first says why.
        refused = tls_refusal(address, security.get_connection_args("worker")["ssl_context"])
        if refused is not None:
            raise CertificateRefused(
                f"the scheduler at {address} and this worker do not trust each other "
                f"({refused}): both need certificates from the same `toolrun cluster certs` "
                f"CA, and {certs.ca} is not the scheduler's",
                hint="make this worker's folder with the CA the daemon's came from: "
                "toolrun cluster certs THAT_DIR --worker NAME",
            )
    if options.slots < 1:
        raise UsageError(f"--slots must be at least 1, not {options.slots}", field="--slots")
    labels = worker_labels(options.labels)
    registries = worker_registries(options.registries or [])
    name = options.name or default_name()

    async def main() -> None:
        worker = await start_worker(
            ctx,
            str(address),
            name=name,
            labels=labels,
            slots=options.slots,
            registries=registries,
            timeout=options.timeout,
            security=security,
        )
        shown = ", ".join(f"{k}={v}" for k, v in labels.items())
        print(
            f"worker {name} joined {address} as {worker.address} ({options.slots} slots; {shown})",
            file=sys.stderr,
            flush=True,
        )
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            # Windows has no signal handlers in asyncio: Ctrl+C raises instead.
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, stop.set)
        finished = asyncio.ensure_future(worker.finished())
        stopped = asyncio.ensure_future(stop.wait())
        await asyncio.wait({finished, stopped}, return_when=asyncio.FIRST_COMPLETED)
        if stop.is_set():
            await _close_quietly(worker)
            print(f"worker {name} stopped", file=sys.stderr, flush=True)
        else:
            raise SchedulerUnreachable(f"worker {name}: the scheduler at {address} was lost")

    asyncio.run(main())
