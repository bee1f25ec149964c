"""``toolrun daemon``: serve the engine over HTTP, and manage the tokens callers present."""

from __future__ import annotations

import sys
from pathlib import Path

from ..config import TOKEN_SCOPES, ConfigEditor
from ..errors import UsageError
from ..tools.versions import is_tool_name
from ..units import parse_duration
from .context import Context
from .output import info, print_json, print_table

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ..cluster.hosting import ClusterOptions


LOCAL_PARALLEL = 4
# A cluster daemon's runs mostly wait for a worker's slot, in Dask's queue and by priority:
# its own limit only keeps a flood of runs from being prepared at once.
CLUSTER_PARALLEL = 64


def serve(
    ctx: Context,
    *,
    host: str,
    port: int,
    max_parallel: int | None,
    queue: int,
    grace: str,
    tls_cert: Path | None,
    tls_key: Path | None,
    log_file: Path | None,
    allow_hosts: tuple[str, ...] = (),
    loop: str = "auto",
    cluster: str | None = None,
    cluster_port: int = 8786,
    cluster_local: bool = False,
    cluster_wait: str = "10m",
    cluster_certs: Path | None = None,
) -> None:
    from ..config import SETTINGS
    from ..daemon.core import DaemonSettings
    from ..daemon.server import serve as run_server

    try:
        grace_seconds = parse_duration(grace)
    except ValueError as exc:
        raise UsageError(f"--grace must be {exc}, not {grace!r}") from None
    if not 0 <= port <= 65535:
        raise UsageError(f"--port must be between 0 and 65535, not {port}")
    try:
        SETTINGS["allow_hosts"].parse(list(allow_hosts))
    except ValueError as exc:
        raise UsageError(f"--allow-host must be {exc}") from None
    cluster_options = None
    if cluster is not None:
        cluster_options = cluster_settings(
            host, cluster, cluster_port, cluster_local, cluster_wait, cluster_certs
        )
    elif cluster_local or cluster_certs:
        raise UsageError("--cluster-local and --cluster-certs go with --cluster")
    settings = DaemonSettings(
        host=host,
        port=port,
        max_parallel=(
            max_parallel
            if max_parallel is not None
            else (CLUSTER_PARALLEL if cluster_options else LOCAL_PARALLEL)
        ),
        queue=queue,
        grace=grace_seconds,
        tls_cert=tls_cert,
        tls_key=tls_key,
        log_file=log_file,
        allow_hosts=allow_hosts,
        loop=loop,
        cluster=cluster_options,
    )
    run_server(ctx, settings)


def cluster_settings(
    host: str, cluster: str, port: int, local: bool, wait: str, certs: Path | None = None
) -> ClusterOptions:
    from ..cluster.addresses import parse_address
    from ..cluster.hosting import HERE, ClusterOptions, check_security

    try:
        wait_seconds = parse_duration(wait)
    except ValueError as exc:
        raise UsageError(f"--cluster-wait must be {exc}, not {wait!r}") from None
    if not 0 < port <= 65535:
        raise UsageError(f"--cluster-port must be between 1 and 65535, not {port}")
    join = None if cluster == HERE else cluster
    options = ClusterOptions(
        join=join, host=host, port=port, local=local, wait_for_worker=wait_seconds, certs=certs
    )
    address = parse_address(join, "--cluster") if join else options.address()
    check_security(address, certs, "--cluster", "--cluster-certs")
    if certs is not None:
        from ..cluster.certs import daemon_certs

        daemon_certs(certs)  # a missing or foreign file is said now, not at the first worker
    return options


def token_create(ctx: Context, name: str, *, scope: str, allow: list[str]) -> None:
    from ..daemon.auth import new_token

    if not is_tool_name(name):
        raise UsageError(f"token name {name!r} must be letters, digits, '.', '_' or '-'")
    if scope not in TOKEN_SCOPES:
        raise UsageError(f"--scope must be one of {', '.join(TOKEN_SCOPES)}, not {scope!r}")
    for target in allow:
        if not is_tool_name(target):
            raise UsageError(f"--allow takes toolchain or tool names, not {target!r}")
    secret, token = new_token(name, scope, tuple(allow))
    editor = ConfigEditor(ctx.paths.config_file)
    editor.add_token(token)
    editor.save()
    # The secret is printed once, alone on stdout, so `T=$(toolrun daemon token create ci)` works.
    print(secret)
    print(
        f"token {name!r} ({scope}) saved as a hash in {ctx.paths.config_file}; "
        "this is the only time it is shown",
        file=sys.stderr,
    )


def token_list(ctx: Context, *, as_json: bool = False) -> None:
    tokens = ctx.config.tokens
    if as_json:
        print_json(
            [
                {"name": t.name, "scope": t.scope, "allow": list(t.allow), "created": t.created}
                for t in tokens
            ]
        )
        return
    if not tokens:
        info("no tokens; the daemon then serves loopback only, to anyone on this machine")
        return
    print_table(
        ["name", "scope", "allow", "created"],
        [[t.name, t.scope, ", ".join(t.allow) or "(any)", t.created] for t in tokens],
    )


def token_revoke(ctx: Context, name: str) -> None:
    editor = ConfigEditor(ctx.paths.config_file)
    editor.remove_token(name)
    editor.save()
    info(f"token {name!r} revoked (a running daemon picks this up when restarted)")
