"""What a caller asks the daemon to run, read from a request body and checked field by field.

The bodies' shapes are declared once, as ``ToolRequest`` and ``ToolchainRequest``: the OpenAPI
document is made of them and the checks take their field names from them. The checks walk the
decoded body themselves to say what a caller meant (quote a number, the seed's list forms of
env and args); a test holds them to the same corpus as the document's schema.

Pure functions over bytes and dicts: every problem becomes a BadRequest naming the field.

How a body's bytes become a mapping is ``bodies.py``'s.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from msgspec import UNSET, Meta, Struct, UnsetType

from ..policy import ENV_NAME_PATTERN, FORBIDDEN_ARG_PATTERN
from ..records import field, record
from ..selectors import (
    Requirement,
    Selector,
    SelectorError,
    check_key,
    check_value,
    requirement,
)
from ..toolchains.document import REQUIREMENT_KEYS, Priority, RunsOn
from ..tools.versions import (
    CONSTRAINT_PATTERN,
    MAX_NAME,
    MAX_SPEC,
    NAME_PATTERN,
    is_constraint,
    is_tool_name,
)
from ..units import DURATION_PATTERN, MAX_DURATION
from .bodies import BadRequest, YamlNumber

ENV_ITEM_PATTERN = "^([A-Za-z_][A-Za-z0-9_]*)[=:](.*)$"  # the seed's list form: - foo:bar
_ENV_NAME_RE = re.compile(ENV_NAME_PATTERN)
_ENV_ITEM_RE = re.compile(ENV_ITEM_PATTERN, re.DOTALL)
MAX_ARGS = 10_000  # a tool's argv; beyond it, checking each one would hold up the daemon


NO_NUL = "^[^\\x00]*$"
Arg = Annotated[
    str,
    Meta(
        pattern=NO_NUL,
        extra_json_schema={"not": {"pattern": FORBIDDEN_ARG_PATTERN}},
        description="No absolute path and no '..' in any part a tool may read as a path",
    ),
]
Name = Annotated[str, Meta(pattern=NAME_PATTERN, max_length=MAX_NAME)]
EnvValue = Annotated[str, Meta(pattern=NO_NUL)]
EnvName = Annotated[str, Meta(pattern=ENV_NAME_PATTERN)]
Env = Annotated[
    dict[EnvName, EnvValue]
    | list[
        Annotated[dict[EnvName, EnvValue], Meta(min_length=1, max_length=1)]
        | Annotated[
            str, Meta(pattern=ENV_ITEM_PATTERN, extra_json_schema={"not": {"pattern": "\\x00"}})
        ]
    ],
    Meta(
        description="A mapping of NAME: value, or the seed's list: [{NAME: value}] or "
        "['NAME=value', 'NAME:value']. Remote callers may set only names that the tool's "
        "tool.toml, the toolchain or the daemon's config accept (accept_env)"
    ),
]
Timeout = Annotated[
    Annotated[float, Meta(ge=0, le=MAX_DURATION)] | Annotated[str, Meta(pattern=DURATION_PATTERN)],
    Meta(description="Seconds, or a duration such as 30s, 10m, 1h30m; 0: the toolchain's own"),
]
Params = dict[
    str,
    Annotated[
        str, Meta(pattern=NO_NUL, extra_json_schema={"not": {"pattern": FORBIDDEN_ARG_PATTERN}})
    ]
    | float
    | bool
    | None,
]


class ToolRequest(Struct, forbid_unknown_fields=True):
    """A run of one tool (``POST /cmd``, ``POST /api/v1/runs``)."""

    cmd: Annotated[Name, Meta(description="A tool's name")]
    version: (
        Annotated[
            str,
            Meta(
                pattern=CONSTRAINT_PATTERN,
                max_length=MAX_SPEC,
                description="0.1.0, 0.1, ^1.2, ~1.2.3, >=1,<2, latest (a string: 1.10 is not 1.1)",
            ),
        ]
        | UnsetType
    ) = UNSET
    args: (
        Annotated[
            Arg | Annotated[list[Arg], Meta(max_length=MAX_ARGS)],
            Meta(description="The tool's arguments, each one argv item (never a shell line)"),
        ]
        | UnsetType
    ) = UNSET
    env: Env | UnsetType = UNSET
    timeout: Timeout | UnsetType = UNSET
    runs_on: RunsOn | UnsetType = UNSET
    priority: Priority | UnsetType = UNSET


class ToolchainRequest(Struct, forbid_unknown_fields=True):
    """A run of a toolchain, with its params (``args`` is the seed's name for them; give one)."""

    toolchain: Name
    params: Params | UnsetType = UNSET
    args: Annotated[Params, Meta(description="The seed's name for params")] | UnsetType = UNSET
    env: Env | UnsetType = UNSET
    timeout: Timeout | UnsetType = UNSET
    runs_on: RunsOn | UnsetType = UNSET
    priority: Priority | UnsetType = UNSET
    locked: (
        Annotated[
            bool,
            Meta(
                description="Use exactly the toolchain's lock file (toolrun lock), or refuse: 409"
            ),
        ]
        | UnsetType
    ) = UNSET


KNOWN_FIELDS = sorted(
    {*ToolRequest.__struct_encode_fields__, *ToolchainRequest.__struct_encode_fields__}
)


@record
class RunRequest:
    """One tool (``cmd``) or one toolchain (``toolchain``), with what the caller gave it."""

    cmd: str | None = None
    version: str | None = None
    args: list[str] = field(default_factory=list)
    toolchain: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    timeout: float | None = None
    runs_on: Selector = Selector()
    priority: int | None = None  # None: the toolchain's
    locked: bool | None = None  # the toolchain's lock, exactly; None: as config.toml says

    @property
    def target(self) -> str:
        """The name an allow-list is checked against."""
        return self.toolchain or self.cmd or ""


def run_request(data: dict[str, Any], *, toolchain: str | None = None) -> RunRequest:
    """Check a decoded body. ``toolchain`` (from ``?toolchain=``) makes it a toolchain's params."""
    unknown = sorted((key for key in data if key not in KNOWN_FIELDS), key=str)
    if unknown:
        raise BadRequest(
            f"unknown field {unknown[0]!r}; known: {', '.join(KNOWN_FIELDS)}",
            field=str(unknown[0]),
        )
    toolchain = toolchain or _optional_str(data, "toolchain")
    request = RunRequest(
        env=_env(data.get("env")),
        timeout=_timeout(data.get("timeout")),
        runs_on=_runs_on(data.get("runs_on")),
        priority=_priority(data.get("priority")),
        locked=_locked(data.get("locked")),
    )
    if request.locked and toolchain is None:
        raise BadRequest("locked applies to a toolchain's run, not one tool's", field="locked")
    if toolchain is not None:
        if not is_tool_name(toolchain):
            raise BadRequest(
                f"toolchain {toolchain[:40]!r} must be a plain name of at most "
                f"{MAX_NAME} characters",
                field="toolchain",
            )
        for field_name in ("cmd", "version"):
            if data.get(field_name) is not None:
                raise BadRequest(
                    f"{field_name!r} names a tool; a run of toolchain {toolchain!r} takes params",
                    field=field_name,
                )
        if isinstance(data.get("args"), list):
            raise BadRequest("a toolchain takes params (a mapping), not args", field="args")
        request.toolchain = toolchain
        params = data.get("params")
        if params is not None and data.get("args") is not None:
            raise BadRequest(
                "give params or args (the seed's name for them), not both", field="args"
            )
        if params is None and isinstance(data.get("args"), dict):
            params = data["args"]  # the seed calls a toolchain's inputs its args
        if params is None:
            params = {}
        if not isinstance(params, dict) or not all(isinstance(k, str) for k in params):
            raise BadRequest("params must be a mapping of names to values", field="params")
        request.params = params
        return request
    cmd = _optional_str(data, "cmd")
    if not cmd:
        raise BadRequest("name a tool with 'cmd' (or a toolchain with ?toolchain=)", field="cmd")
    if not is_tool_name(cmd):
        raise BadRequest(
            f"cmd {cmd[:40]!r} must be a tool name of at most {MAX_NAME} characters", field="cmd"
        )
    if data.get("params") is not None:
        raise BadRequest("params belong to a toolchain; a tool takes args", field="params")
    request.cmd = cmd
    version = data.get("version")
    if version is not None:
        if isinstance(version, int | float) and not isinstance(version, bool):
            raise BadRequest(
                f'version must be a string: quote it, "version": "{version}" (a JSON number '
                "loses digits: 1.10 is read as 1.1)",
                field="version",
            )
        if not isinstance(version, str) or not is_constraint(version):
            raise BadRequest(
                "version must be a constraint such as 0.1.0, 0.1, ^1.2, >=1,<2 or latest "
                f"(at most {MAX_SPEC} characters), not {str(version)[:40]!r}",
                field="version",
            )
        request.version = str(version)
    args = data.get("args", [])
    if isinstance(args, str):
        args = [args]
    if not isinstance(args, list):
        raise BadRequest("args must be a list of strings", field="args")
    if len(args) > MAX_ARGS:
        raise BadRequest(f"args holds {len(args)} items; at most {MAX_ARGS}", field="args")
    for index, arg in enumerate(args):
        if not isinstance(arg, str):
            raise BadRequest(
                f"args[{index}] must be a string, not {_kind(arg)}"
                + (" (quote it)" if isinstance(arg, int | float) else ""),
                field=f"args[{index}]",
            )
        if "\0" in arg:
            raise BadRequest(f"args[{index}] holds a NUL byte", field="args")
        request.args.append(str(arg))
    return request


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if value is None:
        return "null"
    return {"list": "a list", "dict": "a mapping"}.get(type(value).__name__, type(value).__name__)


def _locked(raw: Any) -> bool | None:
    if raw is None:
        return None
    if not isinstance(raw, bool):
        raise BadRequest("locked must be true or false", field="locked")
    return raw


def _optional_str(data: dict[str, Any], key: str) -> str | None:
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise BadRequest(f"{key} must be a string", field=key)
    return value


def _env(raw: Any) -> dict[str, str]:
    """A mapping, or the seed's list form (``- foo: bar``, ``- foo:bar`` or ``- foo=bar``)."""
    if raw is None:
        return {}
    if isinstance(raw, str):
        # The seed wrote `env:` then `  -foo:bar`: without a space after the dash, YAML
        # reads one piece of text, not a list.
        suggestion = raw.lstrip("-").strip().replace(":", ": ", 1).replace("=", ": ", 1)
        raise BadRequest(
            f"env must be a mapping of NAME: value or a list of them; it reads as the text "
            f"{raw[:60]!r}. For a list item, put a space after the dash: '- {suggestion[:60]}'",
            field="env",
        )
    if isinstance(raw, list):
        pairs: dict[str, Any] = {}
        for index, item in enumerate(raw):
            if isinstance(item, dict) and len(item) == 1:
                pairs.update(item)
                continue
            match = _ENV_ITEM_RE.match(item) if isinstance(item, str) else None
            if match is None:
                raise BadRequest(
                    f"env[{index}] must be NAME=value, NAME:value or a NAME: value mapping",
                    field=f"env[{index}]",
                )
            pairs[match[1]] = match[2]  # a later item wins, as in an env file
        raw = pairs
    if not isinstance(raw, dict):
        raise BadRequest(
            f"env must be a mapping of names to strings, not {_kind(raw)}", field="env"
        )
    env: dict[str, str] = {}
    for name, value in raw.items():
        if not isinstance(name, str) or not _ENV_NAME_RE.match(name):
            raise BadRequest(f"env name {str(name)[:40]!r} is not a variable name", field="env")
        if not isinstance(value, str):
            hint = " (quote it)" if isinstance(value, int | float) else ""
            raise BadRequest(
                f"env {name!r} must be a string, not {_kind(value)}{hint}", field=f"env.{name}"
            )
        if "\0" in value:
            raise BadRequest(f"env {name!r} holds a NUL byte", field=f"env.{name}")
        env[name] = str(value)
    return env


def _runs_on(raw: Any) -> Selector:
    """Where the run may go: ``{os: linux}`` or a list of requirements, as in a toolchain."""
    if raw is None:
        return Selector()
    try:
        if isinstance(raw, dict):
            found = [
                Requirement(
                    check_key(key, "runs_on"), "eq", (check_value(value, f"runs_on.{key}"),)
                )
                for key, value in raw.items()
            ]
        elif isinstance(raw, list):
            found = []
            for index, item in enumerate(raw):
                where = f"runs_on[{index}]"
                if not isinstance(item, dict):
                    raise SelectorError("a requirement is a mapping {key, operator, values}", where)
                unknown = sorted(set(item) - set(REQUIREMENT_KEYS), key=str)
                if unknown:
                    raise SelectorError(f"unknown field {unknown[0]!r}", where)
                found.append(requirement(_numbers(item), where))
        else:
            raise SelectorError("must be a map of labels or a list of requirements", "runs_on")
    except SelectorError as exc:
        raise BadRequest(str(exc), field=exc.where or "runs_on") from None
    return Selector(tuple(found))


def _numbers(item: dict[str, Any]) -> dict[str, Any]:
    """A YAML body's numbers are kept as written (see YamlNumber); gt and lt compare them."""
    values = item.get("values")
    listed = values if isinstance(values, list) else [values]
    if item.get("operator") in ("gt", "lt") and any(isinstance(v, YamlNumber) for v in listed):
        numbers = [v.number if isinstance(v, YamlNumber) else v for v in listed]
        return {**item, "values": numbers if isinstance(values, list) else numbers[0]}
    return item


def _priority(raw: Any) -> int | None:
    if raw is None:
        return None
    from ..priorities import PriorityError, parse_priority

    if isinstance(raw, YamlNumber):
        raw = raw.number
    try:
        return parse_priority(raw)
    except PriorityError as exc:
        raise BadRequest(exc.message, field="priority") from None


def _timeout(raw: Any) -> float | None:
    """Seconds (a number) or a duration ("30s", "1h30m"); 0 or absent: the toolchain's own."""
    if raw is None:
        return None
    from ..units import parse_duration

    if isinstance(raw, YamlNumber):
        raw = raw.number
    if isinstance(raw, str) and raw.strip() != raw:
        raise BadRequest("timeout must be a duration such as 30s, without spaces", field="timeout")
    try:
        seconds = parse_duration(raw, zero=True)
    except ValueError as exc:
        raise BadRequest(f"timeout must be {exc}", field="timeout") from None
    return seconds or None
