"""``toolrun worker`` (join a cluster and run steps), ``toolrun workers`` (list them) and
``toolrun cluster certs`` (the certificates that let machines join)."""

from __future__ import annotations

import time
from pathlib import Path

from ..errors import UsageError
from ..runs.event_text import format_duration
from .context import Context
from .output import info, print_json, print_table


def worker(
    ctx: Context,
    address: str,
    *,
    labels: list[str],
    slots: int,
    name: str | None,
    registries: list[str],
    timeout: str,
    certs: Path | None = None,
) -> None:
    from ..cluster.worker import WorkerOptions, run_worker
    from ..units import parse_duration

    try:
        timeout_seconds = parse_duration(timeout)
    except ValueError as exc:
        raise UsageError(f"--timeout must be {exc}, not {timeout!r}") from None
    options = WorkerOptions(
        address=address,
        labels=labels,
        slots=slots,
        name=name,
        registries=registries,
        timeout=timeout_seconds,
        certs=certs,
    )
    run_worker(ctx, options)


def certs(out_dir: Path, *, workers: list[str], hosts: list[str], days: int) -> None:
    from ..cluster.certs import CA_KEY, DAEMON_DIR, WORKERS_DIR, make_certs

    made = make_certs(out_dir, workers=workers or ["worker"], hosts=hosts, days=days)
    for path in made.written:
        info(f"wrote {path}")
    info(
        f"copy {out_dir / DAEMON_DIR} to the daemon's machine (toolrun daemon --cluster "
        f"--cluster-certs DIR) and each {out_dir / WORKERS_DIR}/NAME to that worker's "
        f"(toolrun worker tls://HOST:8786 --certs DIR); keep {out_dir / CA_KEY} to yourself"
    )


def workers(ctx: Context, *, as_json: bool = False) -> None:
    if not ctx.remote:
        raise UsageError(
            "toolrun workers asks a daemon: give --remote URL (or set TOOLRUN_REMOTE)",
            field="--remote",
        )
    data = ctx.remote_runs.call("GET", "/api/v1/workers").json()
    if as_json:
        print_json(data)
        return
    if not data.get("cluster"):
        info(f"{ctx.remote} has no cluster: it runs every step itself")
        return
    rows = data.get("workers", [])
    if not rows:
        info(f"no worker has joined {data.get('scheduler')}")
        return
    now = time.time()
    print_table(
        ["name", "address", "labels", "slots", "running", "heartbeat", "state"],
        [
            [
                w["name"],
                w["address"],
                ", ".join(f"{k}={v}" for k, v in sorted(w["labels"].items())),
                str(w["slots"]),
                str(w["running"]),
                format_duration(max(0.0, now - w["last_heartbeat"])) + " ago",
                w["state"],
            ]
            for w in rows
        ],
    )
