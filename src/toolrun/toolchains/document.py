"""A toolchain file's shape, declared once: the keys the loader reads and
``docs/toolchain.schema.json`` both come from these Structs.

The loader walks YAML nodes itself rather than decoding into these, so that every problem keeps
its file:line:col and all of them are reported at once; it takes from here the keys each
mapping may hold. A test checks that the generated schema is the checked-in one and that the
loader and the schema refuse the same corpus of bad toolchains. What no schema can say (a need
naming no step, a cycle, an expression reading an unknown parameter) only the loader checks.

``python -m toolrun.toolchains.document`` prints the schema.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from msgspec import UNSET, Meta, Struct, UnsetType

from ..policy import ENV_NAME_PATTERN
from ..priorities import HIGHEST, LOWEST
from ..selectors import LABEL_KEY_PATTERN, LABEL_VALUE_PATTERN
from ..tools.versions import MAX_NAME, MAX_SPEC
from ..units import DURATION_PATTERN, MAX_DURATION
from . import keys as keys_module
from .keys import (
    ACCEPT_ENV_PATTERN,
    MAX_BACKOFF,
    MAX_RETRIES,
    PARAM_NAME_PATTERN,
    SCHEDULE_NAME_PATTERN,
    STEP_ID_PATTERN,
)

Scalar = str | float | bool
Duration = Annotated[
    Annotated[float, Meta(gt=0, le=MAX_DURATION)] | Annotated[str, Meta(pattern=DURATION_PATTERN)],
    Meta(
        description="Seconds, or a duration such as 30s, 10m, 1h30m, 7d (units w, d, h, m, s "
        "in that order)."
    ),
]
EnvName = Annotated[str, Meta(pattern=ENV_NAME_PATTERN)]
EnvMap = dict[EnvName, Scalar]
Env = Annotated[
    EnvMap | list[EnvMap] | None,
    Meta(description="A map NAME: value, or the seed's list of single-key maps (- NAME: value)."),
]
Args = Annotated[list[Scalar], Meta(description="Each item is one argument, never a shell line.")]
Count = Annotated[int, Meta(ge=0, le=MAX_RETRIES)]
StepId = Annotated[str, Meta(pattern=STEP_ID_PATTERN)]


LabelKey = Annotated[str, Meta(pattern=LABEL_KEY_PATTERN)]
LabelValue = Annotated[str, Meta(pattern=LABEL_VALUE_PATTERN)] | float | bool


class _Requirement(Struct, forbid_unknown_fields=True, tag_field="operator"):
    """One requirement on a worker's labels (seed 001's LabelSelectorRequirement), told
    apart by its operator."""

    key: LabelKey


Values = Annotated[list[LabelValue], Meta(min_length=1)] | LabelValue
Number = Annotated[list[float], Meta(min_length=1, max_length=1)] | float


class In(_Requirement, tag="in"):
    values: Values


class NotIn(_Requirement, tag="not_in"):
    values: Values


class Exists(_Requirement, tag="exists"):
    pass


class NotExists(_Requirement, tag="not_exists"):
    pass


class Gt(_Requirement, tag="gt"):
    values: Number


class Lt(_Requirement, tag="lt"):
    values: Number


Requirement = In | NotIn | Exists | NotExists | Gt | Lt
REQUIREMENT_KEYS = keys_module.REQUIREMENT  # every kind's, for the loader's checks

Priority = Annotated[
    Literal["high", "normal", "low"] | Annotated[int, Meta(ge=LOWEST, le=HIGHEST)],
    Meta(
        description="How soon its runs start beside others waiting: high, normal (the "
        f"default), low, or a whole number from {LOWEST} to {HIGHEST} (high is 10, low -10)."
    ),
]

RunsOn = Annotated[
    dict[LabelKey, LabelValue] | list[Requirement],
    Meta(
        description="Where it may run: label equalities ({os: windows}) or requirements "
        "(- {key: gpu, operator: exists}); in and not_in take values, gt and lt one number."
    ),
]


class Param(Struct, forbid_unknown_fields=True):
    """A parameter written out; a bare value instead is its default, and its type is the
    default's."""

    type: Literal["string", "boolean", "integer", "number"] | UnsetType = UNSET
    default: Scalar | UnsetType = UNSET
    required: bool | UnsetType = UNSET
    description: str | UnsetType = UNSET
    choices: list[Scalar] | UnsetType = UNSET


class Retries(Struct, forbid_unknown_fields=True):
    """How often and how patiently a failed step is tried again."""

    max: Count | UnsetType = UNSET
    delay: Duration | UnsetType = UNSET
    backoff: Annotated[float, Meta(ge=1, le=MAX_BACKOFF)] | UnsetType = UNSET


class Platform(Struct, forbid_unknown_fields=True):
    """What a step takes instead on one platform."""

    args: Args | UnsetType = UNSET
    env: Env | UnsetType = UNSET


class ByPlatform(Struct, forbid_unknown_fields=True):
    """Overrides by the platform the step runs on."""

    windows: Platform | UnsetType = UNSET
    linux: Platform | UnsetType = UNSET
    macos: Platform | UnsetType = UNSET


class Step(Struct, forbid_unknown_fields=True, rename={"if_": "if"}):
    """One step: a registered tool run at a version."""

    cmd: Annotated[
        str,
        Meta(
            min_length=1,
            max_length=MAX_NAME + 2 + MAX_SPEC,
            description="The registered tool to run (uexp, or uexp@^0.1).",
        ),
    ]
    version: (
        Annotated[
            str,
            Meta(
                max_length=MAX_SPEC,
                description="latest, 0.1.0, 0.1, ^0.1, ~0.1.2, >=0.1,<0.3 ... Always a string: "
                "quote numbers.",
            ),
        ]
        | UnsetType
    ) = UNSET
    description: str | UnsetType = UNSET
    args: Args | UnsetType = UNSET
    env: Env | UnsetType = UNSET
    needs: (
        Annotated[
            StepId | list[StepId],
            Meta(
                description="Steps that must finish first; default: the previous step. [] "
                "makes a root."
            ),
        ]
        | UnsetType
    ) = UNSET
    if_: Annotated[Scalar, Meta(description="An expression; ${{ }} is optional.")] | UnsetType = (
        UNSET
    )
    timeout: Duration | UnsetType = UNSET
    retries: Count | Retries | UnsetType = UNSET
    continue_on_error: bool | UnsetType = UNSET
    by_platform: ByPlatform | UnsetType = UNSET
    runs_on: RunsOn | UnsetType = UNSET


class Schedule(Struct, forbid_unknown_fields=True):
    """A time the toolchain runs by itself: the daemon fires it. See docs/automation.md."""

    cron: Annotated[
        str,
        Meta(
            description='Five cron fields ("0 3 * * *"), a macro (@hourly, @daily, @weekly, '
            '@monthly, @yearly) or an interval ("@every 10m").'
        ),
    ]
    name: (
        Annotated[
            str,
            Meta(
                pattern=SCHEDULE_NAME_PATTERN,
                description="Told apart from the toolchain's other schedules: TOOLCHAIN.NAME.",
            ),
        ]
        | UnsetType
    ) = UNSET
    timezone: (
        Annotated[str, Meta(description="An IANA time zone; default: the daemon's.")] | UnsetType
    ) = UNSET
    params: dict[Annotated[str, Meta(pattern=PARAM_NAME_PATTERN)], Scalar] | UnsetType = UNSET
    overlap: (
        Annotated[
            Literal["skip", "queue", "cancel_previous"],
            Meta(description="When the last run it started is still going (default skip)."),
        ]
        | UnsetType
    ) = UNSET
    catch_up: (
        Annotated[
            Duration,
            Meta(
                description="After the daemon was down: fire once if a time was missed "
                "within this long (default: never)."
            ),
        ]
        | UnsetType
    ) = UNSET


class Toolchain(Struct, forbid_unknown_fields=True):
    """A toolchain: steps that each run a registered tool at a version. See
    docs/toolchains.md."""

    toolchain: Annotated[
        list[Annotated[dict[StepId, Step], Meta(min_length=1, max_length=1)]],
        Meta(min_length=1, description="The steps, in order: - step-id: {cmd: ...}"),
    ]
    description: str | UnsetType = UNSET
    params: (
        Annotated[
            dict[Annotated[str, Meta(pattern=PARAM_NAME_PATTERN)], Scalar | Param | None],
            Meta(
                description="Parameters given as key=value on the command line or in an HTTP body."
            ),
        ]
        | UnsetType
    ) = UNSET
    env: Env | UnsetType = UNSET
    accept_env: (
        Annotated[
            list[Annotated[str, Meta(pattern=ACCEPT_ENV_PATTERN)]],
            Meta(
                description="Env names a remote caller of the daemon may set for these steps: "
                "NAME or PREFIX_*. Names that decide what code a process loads stay refused."
            ),
        ]
        | UnsetType
    ) = UNSET
    pass_env: (
        Annotated[
            list[Annotated[str, Meta(pattern=ACCEPT_ENV_PATTERN)]],
            Meta(
                description="Env names of the caller's own environment that reach these steps "
                "in a run from the command line (toolrun run): NAME or PREFIX_*. A daemon's "
                "callers set env in their request, held to accept_env."
            ),
        ]
        | UnsetType
    ) = UNSET
    timeout: Duration | UnsetType = UNSET
    max_parallel: Annotated[int, Meta(ge=1)] | UnsetType = UNSET
    runs_on: RunsOn | UnsetType = UNSET
    priority: Priority | UnsetType = UNSET
    schedule: (
        Annotated[
            str | Schedule | list[str | Schedule],
            Meta(description="When the daemon runs it by itself: a cron string, or schedules."),
        ]
        | UnsetType
    ) = UNSET


def keys(shape: type[Struct]) -> tuple[str, ...]:
    """The keys a mapping of this shape may hold, as written in the file."""
    return shape.__struct_encode_fields__


def json_schema() -> dict[str, Any]:
    """docs/toolchain.schema.json."""
    generated = msgspec.json.schema(Toolchain)
    definitions = generated["$defs"]
    top = definitions.pop("Toolchain")
    for definition in definitions.values():
        definition.pop("title", None)  # msgspec's titles are our class names
    top.pop("title")
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://toolrun.dev/toolchain.schema.json",
        "title": "toolrun toolchain",
        **top,
        "$defs": definitions,
    }


def schema_text() -> str:
    import json

    return json.dumps(json_schema(), indent=2, ensure_ascii=False) + "\n"


if __name__ == "__main__":
    print(schema_text(), end="")
