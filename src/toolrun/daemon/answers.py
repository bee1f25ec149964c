"""The daemon's own answers, declared once: the handlers build these and the OpenAPI document
(openapi.py) describes them, so the two cannot drift. Runs, steps, tools and toolchains are
``json_views``' shapes, which ``--json`` prints too."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from msgspec import UNSET, Meta, Struct, UnsetType
from starlette.responses import Response

from ..json_views import Run, RunId, RunStatus, Tool, Toolchain


class Error(Struct, forbid_unknown_fields=True):
    """What went wrong, and which part of the request it was."""

    error: str
    message: str
    field: str | UnsetType = UNSET


class Pending(Struct, forbid_unknown_fields=True):
    id: RunId
    status: Literal["queued", "running", "paused"]
    position: int | UnsetType = UNSET


class Cancelling(Struct, forbid_unknown_fields=True):
    id: RunId
    status: Literal["cancelling"] = "cancelling"


class RunList(Struct, forbid_unknown_fields=True):
    """A page of runs, newest first; ``next_cursor`` asks for the next."""

    runs: list[Run]
    page: int
    page_size: int
    next_cursor: RunId | None


class RunChange(Struct, kw_only=True):
    """A run's state changed (the ``run`` event of ``/api/v1/events``)."""

    id: RunId
    toolchain: str
    status: RunStatus
    requester: str
    at: float
    duration: float | None


class File(Struct, forbid_unknown_fields=True):
    path: str
    size: int
    sha256: Annotated[str, Meta(pattern="^[0-9a-f]{64}$")]


class Artifacts(Struct, forbid_unknown_fields=True):
    """The files a run left in its workspace."""

    id: RunId
    files: list[File]


class Tools(Struct, forbid_unknown_fields=True):
    installed: list[Tool]
    available: (
        Annotated[
            dict[str, dict[str, str]],
            Meta(description="tool -> version -> the registry that offers it"),
        ]
        | UnsetType
    ) = UNSET


class Toolchains(Struct, forbid_unknown_fields=True):
    toolchains: list[Toolchain]


class Health(Struct, forbid_unknown_fields=True):
    status: Literal["ok", "draining"]
    version: str
    running: int
    queued: int


class Worker(Struct, forbid_unknown_fields=True):
    """A worker in the daemon's cluster, as the scheduler sees it."""

    name: str
    address: str
    labels: dict[str, str]
    slots: int
    running: Annotated[int, Meta(description="steps of this daemon running there now")]
    last_heartbeat: Annotated[float, Meta(description="seconds since the epoch")]
    heartbeat_age: Annotated[float, Meta(description="seconds since its last heartbeat")]
    state: Annotated[str, Meta(description="Dask's: running, paused, closing, ...")]
    version: Annotated[str, Meta(description="the toolrun it runs")]


class Workers(Struct, forbid_unknown_fields=True):
    cluster: Annotated[bool, Meta(description="false: this daemon runs every step itself")]
    scheduler: str | None
    workers: list[Worker]


class Controlled(Struct, forbid_unknown_fields=True):
    """What POST /api/v1/runs/{id}/pause and /resume answer: asked, not yet done."""

    id: RunId
    wanted: Literal["pause", "pause_now", "resume"]


class HookAnswer(Struct, forbid_unknown_fields=True):
    """What POST /hooks/NAME answers: the run it started, or why it started none."""

    ran: bool
    id: str | UnsetType = UNSET
    url: Annotated[str, Meta(description="the run in the API")] | UnsetType = UNSET
    page: Annotated[str, Meta(description="the run's page in the dashboard")] | UnsetType = UNSET
    reason: (
        Annotated[str, Meta(description="why it did not run (its if: was false)")] | UnsetType
    ) = UNSET


SHAPES: tuple[type[Struct], ...] = (
    Error,
    Pending,
    Cancelling,
    Run,
    RunList,
    RunChange,
    Artifacts,
    Tools,
    Toolchains,
    Health,
    Worker,
    Workers,
    HookAnswer,
    Controlled,
)


def answer(
    shape: Struct, status_code: int = 200, headers: dict[str, str] | None = None
) -> Response:
    return Response(
        msgspec.json.encode(shape),
        status_code=status_code,
        headers=headers,
        media_type="application/json",
    )


def plain(shape: Struct) -> Any:
    return msgspec.to_builtins(shape)
