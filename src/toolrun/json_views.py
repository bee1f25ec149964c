"""The JSON shapes of runs, tools and toolchains, declared once: ``--json``, the daemon's
answers, ``--remote``'s reading of them and the OpenAPI document (daemon/openapi.py) all use
these Structs."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Literal

import msgspec
from msgspec import UNSET, Meta, Struct, UnsetType

if TYPE_CHECKING:
    from .doctor import Check
    from .history.stats import ToolchainSummary
    from .history.store import RunRecord, StepRecord
    from .toolchains.model import Toolchain as ToolchainModel
    from .tools.installer import InstalledTool
    from .tools.search import Found

RUN_ID_PATTERN = r"^[0-9]{14}-[0-9]{1,9}$"
RunId = Annotated[str, Meta(pattern=RUN_ID_PATTERN, examples=["20250208123359-1"])]
# Spelled out for the type checker and the schema; a test checks them against the store's.
RunStatus = Literal[
    "queued", "running", "paused", "succeeded", "failed", "cancelled", "timed_out", "interrupted"
]
StepStatus = Literal[
    "pending", "running", "succeeded", "failed", "skipped", "cancelled", "timed_out", "worker_lost"
]
Value = str | int | float | bool | None


class Step(Struct, kw_only=True):
    """A step of a run: the tool version it ran and how it ended."""

    id: str
    tool: str
    spec: str
    version: str | None
    sha256: str | None
    status: StepStatus
    attempts: int
    exit_code: int | None
    started_at: float | None
    finished_at: float | None
    duration: float | None
    outputs: dict[str, str]
    error: str | None
    allowed_failure: bool
    worker: str | None = None  # the cluster worker of its last attempt
    workers: list[str | None] = []  # each attempt's worker, in order


class Run(Struct, kw_only=True):
    """A run: the toolchain, who started it, its params, times and outcome; its steps where
    asked for, and over HTTP its place in the queue and its links."""

    id: RunId
    toolchain: str
    status: RunStatus
    origin: str
    requester: str
    params: dict[str, Value]
    created_at: float
    started_at: float | None
    finished_at: float | None
    duration: float | None
    exit_code: int | None
    error: str | None
    rerun_of: str | None
    toolchain_sha256: str | None
    size_bytes: int | None
    priority: int = 0  # higher starts first; high is 10, low -10
    lock_sha256: str | None = None  # the lock file a --locked run kept to
    steps: list[Step] | UnsetType = UNSET
    position: int | UnsetType = UNSET
    links: dict[str, str] | UnsetType = UNSET


class Tool(Struct, kw_only=True):
    """An installed tool version."""

    name: str
    version: str
    kind: str
    description: str
    installed_at: float
    archive_sha256: str | None
    path: Annotated[str, Meta(description="Only to a caller with the admin scope")] | UnsetType = (
        UNSET
    )
    source: (
        Annotated[str, Meta(description="Only to a caller with the admin scope")] | UnsetType
    ) = UNSET


class Param(Struct, kw_only=True):
    type: str
    default: Value
    required: bool
    description: str
    choices: list[Value]


class ToolchainStep(Struct, kw_only=True):
    id: str
    cmd: str
    version: str
    needs: list[str]
    timeout: float | None
    retries: int
    continue_on_error: bool


class Toolchain(Struct, kw_only=True):
    """A toolchain as loaded; over HTTP, one that does not load is named with its error."""

    name: str
    valid: bool | UnsetType = UNSET
    error: str | UnsetType = UNSET
    description: str | UnsetType = UNSET
    path: str | UnsetType | None = UNSET
    sha256: str | UnsetType = UNSET
    timeout: float | UnsetType | None = UNSET
    max_parallel: int | UnsetType = UNSET
    params: dict[str, Param] | UnsetType = UNSET
    steps: list[ToolchainStep] | UnsetType = UNSET


class ToolchainStats(Struct, kw_only=True):
    """How one toolchain fared in ``toolrun stats``'s window (durations in seconds)."""

    toolchain: str
    runs: int
    succeeded: int
    failed: Annotated[int, Meta(description="failed, timed out or interrupted")]
    cancelled: int
    active: Annotated[int, Meta(description="queued, running or paused")]
    success_rate: Annotated[
        float | None, Meta(description="succeeded / (succeeded + failed); null before either")
    ]
    p50: float | None
    p95: float | None


class Stats(Struct, kw_only=True):
    """``toolrun stats --json``: the window and each toolchain with a run created in it."""

    since: float
    until: float
    toolchains: list[ToolchainStats]


class ToolMatch(Struct, kw_only=True):
    """A tool ``toolrun tool search`` found: its newest version, installed or offered."""

    name: str
    version: str
    description: str
    installed: list[str]  # installed versions, oldest first
    registry: str | None  # where its newest offered version is; null: installed only


class DoctorCheck(Struct, kw_only=True):
    """One of ``toolrun doctor``'s findings; ``fix`` says what to do when it is not ok."""

    name: str
    status: Literal["ok", "warning", "problem"]
    detail: str
    fix: str


class Doctor(Struct, kw_only=True):
    """``toolrun doctor --json``: the worst status found, and every check."""

    status: Literal["ok", "warning", "problem"]
    checks: list[DoctorCheck]


def plain(shape: Struct) -> Any:
    """A shape as JSON's types (fields left unset are left out)."""
    return msgspec.to_builtins(shape)


# The fields a view copies from the store's records by name: the record is the store's shape
# (its columns), the view what leaves the process; a test checks each view field has a source.
RUN_FIELDS = tuple(
    name for name in Run.__struct_fields__ if name not in ("steps", "position", "links")
)
STEP_FIELDS = tuple(name for name in Step.__struct_fields__ if name != "id")
DERIVED = ("duration", "worker")  # computed from the others


def run_view(run: RunRecord, steps: list[StepRecord] | None = None) -> Run:
    return Run(
        **{name: getattr(run, name) for name in RUN_FIELDS},
        steps=UNSET if steps is None else [step_view(step) for step in steps],
    )


def step_view(step: StepRecord) -> Step:
    return Step(id=step.step_id, **{name: getattr(step, name) for name in STEP_FIELDS})


def run_json(run: RunRecord, steps: list[StepRecord] | None = None) -> dict[str, Any]:
    return plain(run_view(run, steps))  # type: ignore[no-any-return]


def tool_view(tool: InstalledTool, *, private: bool = True) -> Tool:
    """``private``: with where it is and where it came from (this machine's paths)."""
    return Tool(
        name=tool.name,
        version=tool.version,
        kind=tool.manifest.kind,
        description=tool.manifest.description,
        installed_at=tool.installed_at,
        archive_sha256=tool.archive_sha256,
        path=str(tool.path) if private else UNSET,
        source=tool.source if private else UNSET,
    )


def tool_json(tool: InstalledTool, *, private: bool = True) -> dict[str, Any]:
    return plain(tool_view(tool, private=private))  # type: ignore[no-any-return]


def toolchain_view(toolchain: ToolchainModel) -> Toolchain:
    return Toolchain(
        name=toolchain.name,
        description=toolchain.description,
        path=str(toolchain.path) if toolchain.path else None,
        sha256=toolchain.sha256,
        timeout=toolchain.timeout,
        max_parallel=toolchain.max_parallel,
        params={
            p.name: Param(
                type=p.type,
                default=p.default,
                required=p.required,
                description=p.description,
                choices=list(p.choices),
            )
            for p in toolchain.params.values()
        },
        steps=[
            ToolchainStep(
                id=s.id,
                cmd=s.cmd,
                version=s.version or "latest",
                needs=list(s.needs),
                timeout=s.timeout,
                retries=s.retries.max,
                continue_on_error=s.continue_on_error,
            )
            for s in toolchain.steps
        ],
    )


def toolchain_json(toolchain: ToolchainModel) -> dict[str, Any]:
    return plain(toolchain_view(toolchain))  # type: ignore[no-any-return]


def read_run(data: Any) -> Run:
    """A run as a daemon sent it, checked against its shape."""
    from .errors import ConfigError

    try:
        return msgspec.convert(data, Run)
    except msgspec.ValidationError as exc:
        raise ConfigError(f"the daemon answered a run toolrun cannot read: {exc}") from None


def run_from_json(data: Any) -> RunRecord:
    """The record ``run_json`` describes (as a daemon sends it to ``--remote``)."""
    from .history.store import RunRecord

    run = read_run(data)
    fields = {name: getattr(run, name) for name in RUN_FIELDS if name != "duration"}
    return RunRecord(**{**fields, "size_bytes": run.size_bytes or 0})


def steps_from_json(data: Any) -> list[StepRecord]:
    from .history.store import StepRecord

    run = read_run(data)
    return [
        StepRecord(
            run_id=run.id,
            step_id=step.id,
            position=position,
            **{name: getattr(step, name) for name in STEP_FIELDS if name not in DERIVED},
        )
        for position, step in enumerate(run.steps or [])
    ]


def stats_json(summaries: list[ToolchainSummary], *, since: float, until: float) -> Any:
    """``toolrun stats --json``."""
    return plain(
        Stats(
            since=since,
            until=until,
            toolchains=[
                ToolchainStats(
                    toolchain=s.toolchain,
                    runs=s.runs,
                    succeeded=s.succeeded,
                    failed=s.failed,
                    cancelled=s.cancelled,
                    active=s.active,
                    success_rate=s.success_rate,
                    p50=s.p50,
                    p95=s.p95,
                )
                for s in summaries
            ],
        )
    )


def doctor_json(checks: list[Check], status: str) -> Any:
    """``toolrun doctor --json``."""
    return plain(
        msgspec.convert(
            {
                "status": status,
                "checks": [
                    {"name": c.name, "status": c.status, "detail": c.detail, "fix": c.fix}
                    for c in checks
                ],
            },
            Doctor,
        )
    )


def matches_json(found: list[Found]) -> Any:
    """``toolrun tool search --json``."""
    return msgspec.to_builtins(
        [
            ToolMatch(
                name=f.name,
                version=f.version,
                description=f.description,
                installed=list(f.installed),
                registry=f.registry,
            )
            for f in found
        ]
    )
