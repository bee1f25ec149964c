"""The events' shapes, declared once for what reads them: the OpenAPI document (the data of
each SSE event), ``--json``'s readers, and a test that decodes every line real runs write.

The engine itself writes events as plain records (``events.py``): it runs on ``toolrun exec``'s
path, where importing msgspec would cost 28-46 ms of a 100 ms budget. The test that runs
toolchains through every kind of event and decodes each line strictly (unknown fields refused)
is what holds the two together.
"""

from __future__ import annotations

from typing import Literal

from msgspec import UNSET, Struct, UnsetType

from ..json_views import RunId, RunStatus, StepStatus, Value


class BaseEvent(Struct, tag_field="kind", kw_only=True, forbid_unknown_fields=True):
    seq: int
    t: float
    step: str | UnsetType = UNSET
    attempt: int | UnsetType = UNSET


class PlannedStep(Struct, forbid_unknown_fields=True):
    id: str
    tool: str
    spec: str
    version: str | None
    sha256: str | None


class RunStarted(BaseEvent, tag="run_started"):
    """All the history keeps of a run: its log alone can rebuild its index entry."""

    run: RunId
    toolchain: str
    params: dict[str, Value]
    steps: list[str]
    origin: str
    requester: str
    created_at: float
    toolchain_sha256: str | None
    rerun_of: str | None
    plan: list[PlannedStep]
    priority: int = 0
    lock_sha256: str | None = None  # the lock a --locked run kept to


class StepStarted(BaseEvent, tag="step_started"):
    argv: list[str]
    tool: str | UnsetType = UNSET  # absent when the tool could not be started at all
    version: str | UnsetType = UNSET


class Output(BaseEvent, tag="output"):
    """Lines read together: they share one event and one time."""

    stream: Literal["stdout", "stderr"]
    lines: list[str]


class OutputTruncated(BaseEvent, tag="output_truncated"):
    text: str


class StepFinished(BaseEvent, tag="step_finished"):
    status: StepStatus
    exit_code: int | None
    error: str | None
    duration: float
    outputs: dict[str, str]


class StepSkipped(BaseEvent, tag="step_skipped"):
    status: StepStatus
    reason: str


class Message(BaseEvent, tag="message"):
    level: Literal["warning", "error"]
    text: str


class RunPaused(BaseEvent, tag="run_paused"):
    """No further step starts; ``now``: the running steps' processes are frozen too."""

    now: bool
    reason: str | UnsetType = UNSET


class RunResumed(BaseEvent, tag="run_resumed"):
    paused: float  # seconds


class RunFinished(BaseEvent, tag="run_finished"):
    """Every stream ends with one; ``recovered``: made from the history for a run whose
    process died before it could say."""

    status: RunStatus
    exit_code: int
    duration: float | None
    steps: dict[str, StepStatus] | UnsetType = UNSET
    error: str | UnsetType | None = UNSET
    recovered: bool | UnsetType = UNSET


Event = (
    RunStarted
    | StepStarted
    | Output
    | OutputTruncated
    | StepFinished
    | StepSkipped
    | Message
    | RunPaused
    | RunResumed
    | RunFinished
)
SHAPES = (
    RunStarted,
    StepStarted,
    Output,
    OutputTruncated,
    StepFinished,
    StepSkipped,
    Message,
    RunPaused,
    RunResumed,
    RunFinished,
)
