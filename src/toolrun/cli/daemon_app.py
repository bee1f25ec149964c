"""``toolrun daemon``: serve the engine over HTTP, and the tokens its callers present
(daemon_commands.py does the work)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from . import daemon_commands
from .invoke import call
from .options import CONTEXT_SETTINGS, Json, Offline

daemon_app = typer.Typer(
    help="Serve the engine over HTTP (the seed's /cmd and /result, a REST API, SSE, metrics).",
    context_settings=CONTEXT_SETTINGS,
    invoke_without_command=True,
)
token_app = typer.Typer(
    help="Tokens that callers of the daemon present (stored hashed in config.toml).",
    context_settings=CONTEXT_SETTINGS,
    no_args_is_help=True,
)
daemon_app.add_typer(token_app, name="token")


@daemon_app.callback()
def daemon(
    context: typer.Context,
    port: Annotated[int, typer.Option("-p", "--port", help="Port to listen on (0: any).")] = 8080,
    host: Annotated[
        str, typer.Option("--host", help="Address to listen on; beyond loopback needs tokens.")
    ] = "127.0.0.1",
    max_parallel: Annotated[
        int | None,
        typer.Option(
            "--max-parallel",
            help="Runs going at once; more wait in the queue. Default: 4, or 64 with "
            "--cluster (the workers' slots then decide).",
            show_default=False,
        ),
    ] = None,
    queue: Annotated[
        int, typer.Option("--queue", help="Runs that may wait; beyond it callers get 429.")
    ] = 100,
    grace: Annotated[
        str, typer.Option("--grace", help="On SIGTERM, how long running runs may take to end.")
    ] = "30s",
    tls_cert: Annotated[
        Path | None, typer.Option("--tls-cert", help="Serve HTTPS with this certificate (PEM).")
    ] = None,
    tls_key: Annotated[
        Path | None, typer.Option("--tls-key", help="The certificate's private key (PEM).")
    ] = None,
    log_file: Annotated[
        Path | None, typer.Option("--log-file", help="Also append the JSON log lines here.")
    ] = None,
    allow_host: Annotated[
        list[str] | None,
        typer.Option(
            "--allow-host",
            help="Answer requests sent to this name too (beside loopback and the --host "
            "address; .example.com: a whole domain; repeat the option).",
        ),
    ] = None,
    loop: Annotated[
        str,
        typer.Option("--loop", help="Event loop: auto (uvloop if installed), asyncio or uvloop."),
    ] = "auto",
    cluster: Annotated[
        str | None,
        typer.Option(
            "--cluster",
            help="Run steps on Dask workers: alone, host the scheduler here (--cluster-port); "
            "with an address (tcp://host:8786), join that scheduler.",
        ),
    ] = None,
    cluster_port: Annotated[
        int, typer.Option("--cluster-port", help="Port of the scheduler --cluster hosts.")
    ] = 8786,
    cluster_local: Annotated[
        bool,
        typer.Option("--cluster-local", help="With --cluster: run steps here too, as a worker."),
    ] = False,
    cluster_wait: Annotated[
        str,
        typer.Option(
            "--cluster-wait", help="How long a step waits for a worker its runs_on admits."
        ),
    ] = "10m",
    cluster_certs: Annotated[
        Path | None,
        typer.Option(
            "--cluster-certs",
            help="The daemon/ folder of `toolrun cluster certs`: the cluster over tls://, "
            "needed off loopback.",
        ),
    ] = None,
    offline: Offline = False,
) -> None:
    """Serve runs over HTTP until SIGTERM or Ctrl+C (runs going are given --grace to end)."""
    if context.invoked_subcommand is not None:
        return
    call(
        daemon_commands.serve,
        host=host,
        port=port,
        max_parallel=max_parallel,
        queue=queue,
        grace=grace,
        tls_cert=tls_cert,
        tls_key=tls_key,
        log_file=log_file,
        allow_hosts=tuple(allow_host or ()),
        loop=loop,
        cluster=cluster,
        cluster_port=cluster_port,
        cluster_local=cluster_local,
        cluster_wait=cluster_wait,
        cluster_certs=cluster_certs,
        offline=offline,
    )


@token_app.command("create")
def token_create(
    name: Annotated[str, typer.Argument(help="Who or what holds it (shown as requester).")],
    scope: Annotated[str, typer.Option("--scope", help="read, run or admin.")] = "run",
    allow: Annotated[
        list[str] | None,
        typer.Option("--allow", help="Only these toolchains or tools (repeat the option)."),
    ] = None,
) -> None:
    """Create a token and print it once; only its sha256 is stored."""
    call(daemon_commands.token_create, name, scope=scope, allow=allow or [])


@token_app.command("list")
def token_list(as_json: Json = False) -> None:
    """List tokens (names and scopes; the secrets are not kept)."""
    call(daemon_commands.token_list, as_json=as_json)


@token_app.command("revoke")
def token_revoke(name: Annotated[str, typer.Argument(help="The token's name.")]) -> None:
    """Remove a token from config.toml."""
    call(daemon_commands.token_revoke, name)
