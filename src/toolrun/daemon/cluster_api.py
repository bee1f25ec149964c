"""What a cluster daemon adds: ``/api/v1/workers``, and ``/registry/`` for its workers."""

from __future__ import annotations

import asyncio
import hmac
import time

from starlette.requests import Request
from starlette.responses import FileResponse, Response

from .answers import Worker, Workers, answer
from .core import Daemon
from .registry_tree import is_index
from .seed import daemon_of


async def workers(request: Request) -> Response:
    daemon = daemon_of(request)
    daemon.authorize(request, "read")
    return answer(await workers_answer(daemon))


async def workers_answer(daemon: Daemon) -> Workers:
    cluster = daemon.cluster
    if cluster is None or cluster.book is None or cluster.executor is None:
        return Workers(cluster=False, scheduler=None, workers=[])
    running = cluster.executor.running_on()
    now = time.time()
    found = await cluster.book.workers()
    return Workers(
        cluster=True,
        scheduler=cluster.scheduler_address,
        workers=[
            Worker(
                name=w.name,
                address=w.address,
                labels=w.labels,
                slots=w.slots,
                running=running.get(w.address, 0),
                last_heartbeat=w.last_seen,
                heartbeat_age=round(max(0.0, now - w.last_seen), 3),
                state=w.state,
                version=w.version,
            )
            for w in sorted(found, key=lambda w: w.name)
        ],
    )


async def registry_file(request: Request) -> Response:
    daemon = daemon_of(request)
    _authorize_worker(daemon, request)
    tree = daemon.served_tree
    path = request.path_params.get("path", "")
    if is_index(path):
        body = await asyncio.to_thread(tree.index)
        return Response(body, media_type="application/json")
    archive = await asyncio.to_thread(tree.archive, path)
    return FileResponse(archive, media_type="application/zip")


def _authorize_worker(daemon: Daemon, request: Request) -> None:
    """Workers present the token the daemon gave them with the step; people a read token."""
    given = request.headers.get("authorization", "")
    cluster = daemon.cluster
    if cluster is not None and given.startswith("Bearer "):
        secret = given.removeprefix("Bearer ").encode()
        if hmac.compare_digest(secret, cluster.registry_token.encode()):
            return
    daemon.authorize(request, "read")
