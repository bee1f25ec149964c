"""``toolrun stats``: each toolchain's success rate and durations, from this machine's store."""

from __future__ import annotations

import time

from ..errors import UsageError
from ..history.stats import toolchain_stats
from ..runs.event_text import format_duration
from ..units import parse_when
from .context import Context
from .output import info, print_json, print_table


def stats(
    ctx: Context,
    toolchain: str | None = None,
    *,
    since: str = "30d",
    until: str | None = None,
    as_json: bool = False,
) -> None:
    if ctx.remote:
        raise UsageError("toolrun stats reads this machine's store; it does not take --remote")
    now = time.time()
    start = parse_when(since, "--since")
    end = parse_when(until, "--until") if until else now
    if until and end <= start:
        raise UsageError(f"--until ({until}) must come after --since ({since})")
    summaries = toolchain_stats(
        ctx.store, since=start, until=end if until else None, toolchain=toolchain
    )
    if as_json:
        from ..json_views import stats_json  # msgspec: 28 ms, for --json only

        print_json(stats_json(summaries, since=start, until=end))
        return
    if not summaries:
        which = f" of {toolchain}" if toolchain else ""
        info(f"no runs{which} since {_when(start)}")
        return
    print_table(
        ["toolchain", "runs", "succeeded", "failed", "cancelled", "success", "p50", "p95"],
        [
            [
                s.toolchain,
                str(s.runs),
                str(s.succeeded),
                str(s.failed),
                str(s.cancelled),
                "-" if s.success_rate is None else f"{s.success_rate:.0%}",
                format_duration(s.p50),
                format_duration(s.p95),
            ]
            for s in summaries
        ],
    )
    active = sum(s.active for s in summaries)
    going = f"; {active} still going" if active else ""
    info(f"runs created since {_when(start)}{going}")


def _when(moment: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(moment))
