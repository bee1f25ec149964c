"""``toolrun schedule list|run|pause|resume``: the schedules of this machine's toolchains and
config, as the daemons on this store fire them."""

from __future__ import annotations

import time
from typing import Any

from ..automation.catalog import Catalog, ScheduleCatalog
from ..automation.ledger import Fire, Ledger
from ..errors import NotFoundError, UsageError
from ..runs.engine import RunOptions
from ..schedules import Schedule
from .context import Context
from .errors import ExitCode
from .output import info, print_json, print_table, warn


def _catalog(ctx: Context) -> Catalog:
    if ctx.remote:
        raise UsageError(
            "toolrun schedule reads and changes the store on this machine, not --remote: "
            "run it where the daemon runs"
        )
    return ScheduleCatalog().collect(ctx.toolchain_dirs(), ctx.config)


def _find(catalog: Catalog, name: str) -> Schedule:
    schedule = catalog.find(name)
    if schedule is None:
        import difflib

        names = [s.name for s in catalog.schedules]
        close = difflib.get_close_matches(name, names, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        known = ", ".join(names) or "none"
        raise NotFoundError(f"no schedule named {name!r}{hint}; known: {known}")
    return schedule


def schedule_json(
    schedule: Schedule, paused: bool, last: Fire | None, now: float
) -> dict[str, Any]:
    return {
        "name": schedule.name,
        "toolchain": schedule.toolchain,
        "cron": schedule.when.text,
        "timezone": schedule.timezone or None,
        "params": schedule.params,
        "overlap": schedule.overlap,
        "catch_up": schedule.catch_up or None,
        "source": schedule.source,
        "paused": paused,
        "next": None if paused else schedule.next_after(now),
        "last": None
        if last is None
        else {
            "due": last.due,
            "fired_at": last.fired_at,
            "outcome": last.outcome,
            "run_id": last.run_id,
            "run_status": last.run_status,
            "detail": last.detail,
        },
    }


def list_schedules(ctx: Context, *, as_json: bool = False) -> None:
    catalog = _catalog(ctx)
    for problem in catalog.problems:
        warn(problem)
    ledger = Ledger(ctx.store)
    paused, fires, now = ledger.paused(), ledger.last_fires(), time.time()
    rows = [schedule_json(s, s.name in paused, fires.get(s.name), now) for s in catalog.schedules]
    if as_json:
        print_json(rows)
        return
    if not rows:
        info("no schedules: add 'schedule:' to a toolchain, or [[schedules]] to config.toml")
        return
    print_table(
        ["name", "toolchain", "cron", "next", "last", "last run"],
        [
            [
                row["name"],
                row["toolchain"],
                row["cron"] + (f" ({row['timezone']})" if row["timezone"] else ""),
                "paused" if row["paused"] else _moment(row["next"]),
                _last(row["last"]),
                _last_run(row["last"]),
            ]
            for row in rows
        ],
    )


def _moment(timestamp: float | None) -> str:
    if timestamp is None:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(timestamp))


def _last(last: dict[str, Any] | None) -> str:
    if last is None:
        return "never"
    return f"{_moment(last['due'])} {last['outcome']}"


def _last_run(last: dict[str, Any] | None) -> str:
    if last is None or not last["run_id"]:
        return "-" if last is None or not last["detail"] else str(last["detail"])
    return f"{last['run_id']} {last['run_status'] or '?'}"


def run_schedule(
    ctx: Context, name: str, *, as_json: bool = False, tui: bool | None = None
) -> None:
    """Fire a schedule now, here: its toolchain and params, origin schedule, live output."""
    from ..runs.steps import EXIT_CODES
    from .run_commands import run_in_tui, run_live, wants_tui

    schedule = _find(_catalog(ctx), name)
    toolchain = ctx.load_toolchain(schedule.toolchain)
    options = RunOptions(origin="schedule", requester=schedule.name)
    handle = ctx.engine.prepare(toolchain, dict(schedule.params), options)
    ledger = Ledger(ctx.store)
    now = time.time()
    if ledger.claim(schedule.name, now, now):
        ledger.settle(schedule.name, now, "started", handle.id, "toolrun schedule run")
    if tui or (tui is None and not as_json and wants_tui()):
        raise ExitCode(run_in_tui(handle, ctx))
    final = run_live(handle, ctx, as_json=as_json)
    raise ExitCode(EXIT_CODES[final.status])


def pause(ctx: Context, name: str) -> None:
    schedule = _find(_catalog(ctx), name)
    Ledger(ctx.store).set_paused(schedule.name, True)
    info(f"paused {schedule.name}: no daemon on this store fires it until `schedule resume`")


def resume(ctx: Context, name: str) -> None:
    schedule = _find(_catalog(ctx), name)
    Ledger(ctx.store).set_paused(schedule.name, False)
    info(f"resumed {schedule.name}: next at {_moment(schedule.next_after(time.time()))}")
