"""The daemon's side of automation/: the scheduler's runs started through the run manager
like every other run, and the tasks that live as long as the server."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import TYPE_CHECKING

from ..automation.catalog import Catalog, ScheduleCatalog
from ..automation.delivery import DeliveryLoop
from ..automation.ledger import Ledger
from ..automation.scheduler import Scheduler
from ..errors import ToolrunError
from ..history.model import ACTIVE
from ..runs.engine import RunOptions
from ..schedules import Schedule

if TYPE_CHECKING:
    from .core import Daemon

STORE_POLL = 0.25  # seconds between looks at a run another process owns


class DaemonStarter:
    """Starts, cancels and waits for runs for the scheduler and the hooks."""

    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon

    async def start(self, schedule: Schedule) -> str:
        return await self.start_run(
            schedule.toolchain, schedule.params, origin="schedule", requester=schedule.name
        )

    async def start_run(
        self,
        toolchain_name: str,
        params: Mapping[str, object],
        *,
        origin: str,
        requester: str,
        remote: bool = False,
    ) -> str:
        daemon = self.daemon
        toolchain = await asyncio.to_thread(daemon.ctx.load_toolchain, toolchain_name)
        lock = await daemon.lock_for(toolchain, None)  # config.toml's `locked`
        options = RunOptions(origin=origin, requester=requester, remote=remote, lock=lock)
        handle = await daemon.manager.submit(toolchain, dict(params), options)
        return handle.id

    def cancel(self, run_id: str) -> None:
        if not self.daemon.manager.cancel(run_id):
            self.daemon.store.request_cancel(run_id)

    async def ended(self, run_id: str) -> None:
        manager = self.daemon.manager
        if run_id in manager.live:
            await manager.wait(run_id)
            return
        while True:  # a run of another daemon on the store, or of a terminal
            record = await asyncio.to_thread(self.daemon.store.get_run, run_id)
            if record is None or record.status not in ACTIVE:
                return
            await asyncio.sleep(STORE_POLL)


def scheduler_for(daemon: Daemon) -> Scheduler:
    catalog = ScheduleCatalog()

    async def collect() -> Catalog:
        return await asyncio.to_thread(
            catalog.collect, daemon.ctx.toolchain_dirs(), daemon.ctx.config
        )

    return Scheduler(collect, Ledger(daemon.store), DaemonStarter(daemon), daemon.journal.write)


def delivery_loop_for(daemon: Daemon) -> DeliveryLoop | None:
    """The sender of the outbox, when config.toml says whom to tell."""
    notifier = daemon.notifier
    if notifier is None:
        return None
    loop = DeliveryLoop(notifier, lambda: daemon.url, daemon.journal.write)
    notifier.deliver_here = False  # a run ends on the loop: sending is the loop's task
    notifier.recorded = loop.wake.set
    return loop


UPDATE_LOOK = 3600.0  # seconds between looks at whether the daily check is due


async def update_checks(daemon: Daemon, look_every: float = UPDATE_LOOK) -> None:
    """``auto_update`` on a daemon: the daily check of the registries, in a worker thread,
    on the stamp the CLI uses (a build machine that only runs the daemon is kept up to date
    too). A notice has nobody to read it here; ``install`` installs beside, removes nothing."""
    from ..automation.tool_updates import check_due, run_check

    ctx = daemon.ctx
    while True:
        mode = str(ctx.config.get("auto_update"))
        if mode != "off" and check_due(ctx.paths.data_dir):
            try:
                await asyncio.to_thread(
                    run_check,
                    ctx.resolver,
                    ctx.installer,
                    ctx.toolchain_dirs(),
                    ctx.paths.data_dir,
                    mode=mode,
                    policy=str(ctx.config.get("update_policy")),
                )
            except (ToolrunError, OSError) as exc:  # said, and tried again at the next look
                daemon.journal.write("update_check_failed", error=str(exc))
            else:
                daemon.journal.write("update_checked", mode=mode)
        await asyncio.sleep(look_every)
