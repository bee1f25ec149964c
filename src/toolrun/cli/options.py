"""The options several commands share, and the context settings (``-h`` for ``--help``) every
command group takes."""

from __future__ import annotations

from typing import Annotated

import typer

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"]}

Offline = Annotated[
    bool, typer.Option("--offline", help="Never contact an HTTP registry; use what is installed.")
]
Pre = Annotated[bool, typer.Option("--pre", help="Let prereleases match.")]
Json = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
Timeout = Annotated[
    str | None,
    typer.Option("--timeout", help="End the run after this long (30s, 10m, 1h30m)."),
]

RunId = Annotated[
    str, typer.Argument(help="A run id, e.g. 20250208123359-1, or last for the newest run.")
]
