"""``POST /hooks/NAME``: a signed delivery from another system starts the hook's toolchain.

The hook's signature is the caller's authentication (GitHub and GitLab send no bearer token),
so this route asks for no token; everything else the daemon guards (cross-site requests, the
body's size, params that name paths outside the workspace) holds here as on every route.
"""

from __future__ import annotations

import asyncio
import time

from starlette.requests import Request
from starlette.responses import Response

from ..automation.hooks import (
    DELIVERIES_KEPT,
    MAX_BODY,
    Hook,
    Refused,
    context_of,
    delivery_key,
    params_of,
    payload_of,
    should_run,
    verify,
)
from ..automation.ledger import Ledger
from ..errors import ToolrunError, UsageError
from ..policy import check_relative_arg
from .answers import HookAnswer, answer
from .automation import DaemonStarter
from .bodies import BadRequest
from .core import RETRY_AFTER_SECONDS, Daemon, HttpError
from .seed import daemon_of, read_body


async def deliver(request: Request) -> Response:
    daemon = daemon_of(request)
    name = request.path_params["name"]
    hook = daemon.hooks.get(name)
    if hook is None:
        raise HttpError(404, "not_found", f"no hook named {name[:60]!r}")
    request.state.caller = f"hook:{hook.name}"
    body = await read_body(request, MAX_BODY)
    headers = {key.lower(): value for key, value in request.headers.items()}
    client = request.client.host if request.client else None
    try:
        identity = verify(hook, headers, body, time.time())
        payload = payload_of(body, headers.get("content-type", ""))
    except Refused as exc:
        # The journal says why, never what was sent: a signature is as good as a secret.
        daemon.journal.write("hook_refused", hook=hook.name, reason=exc.code, client=client)
        raise HttpError(exc.status, exc.code, exc.message) from None
    ledger = Ledger(daemon.store)
    key = delivery_key(identity) if identity else ""
    if key and not await asyncio.to_thread(ledger.first_delivery, hook.name, key, DELIVERIES_KEPT):
        daemon.journal.write("hook_refused", hook=hook.name, reason="replayed", client=client)
        raise HttpError(401, "replayed", "this delivery was received before; it is not run again")
    try:
        return await _run(daemon, hook, payload, headers, request)
    except BaseException:
        if key:  # not taken: the sender may try the same delivery again
            await asyncio.to_thread(ledger.forget_delivery, hook.name, key)
        raise


async def _run(
    daemon: Daemon, hook: Hook, payload: object, headers: dict[str, str], request: Request
) -> Response:
    context = context_of(hook, payload, headers, dict(request.query_params))
    ran, reason = should_run(hook, context)
    if not ran:
        daemon.journal.write("hook", hook=hook.name, ran=False, reason=reason)
        return answer(HookAnswer(ran=False, reason=reason), status_code=202)
    params = params_of(hook, context)
    for param, value in params.items():
        try:
            check_relative_arg(value)
        except UsageError as exc:
            raise BadRequest(f"params.{param}: {exc.message}", field=f"params.{param}") from None
    async with daemon.hook_locks[hook.name]:  # counted and started as one step
        if hook.max_parallel:
            going = await asyncio.to_thread(Ledger(daemon.store).active_runs, "hook", hook.name)
            if len(going) >= hook.max_parallel:
                raise HttpError(
                    429,
                    "hook_busy",
                    f"hook {hook.name!r} has {len(going)} runs going, its max_parallel",
                    headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
                )
        try:
            run_id = await DaemonStarter(daemon).start_run(
                hook.toolchain, params, origin="hook", requester=hook.name, remote=True
            )
        except ToolrunError as exc:
            daemon.journal.write("hook", hook=hook.name, ran=False, error=exc.message)
            raise
    daemon.journal.write("hook", hook=hook.name, ran=True, run=run_id)
    base = daemon.url
    shown = HookAnswer(
        ran=True, id=run_id, url=f"{base}/api/v1/runs/{run_id}", page=f"{base}/ui/runs/{run_id}"
    )
    return answer(shown, status_code=202)
