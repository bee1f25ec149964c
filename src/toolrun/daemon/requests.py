"""What a caller asks the daemon to run, read from a request body and checked field by field.

Pure functions over bytes and dicts: every problem becomes a BadRequest naming the field.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from ..errors import UsageError
from ..versions import is_tool_name

MAX_BODY = 1024 * 1024


class BadRequest(UsageError):
    """A request the daemon cannot take; ``field`` says which part was wrong."""

    def __init__(self, message: str, *, field: str | None = None, status: int = 400) -> None:
        super().__init__(message)
        self.field = field
        self.status = status


@dataclass
class RunRequest:
    """One tool (``cmd``) or one toolchain (``toolchain``), with what the caller gave it."""

    cmd: str | None = None
    version: str | None = None
    args: list[str] = field(default_factory=list)
    toolchain: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    timeout: float | None = None

    @property
    def target(self) -> str:
        """The name an allow-list is checked against."""
        return self.toolchain or self.cmd or ""


def decode_body(body: bytes, *, kind: str) -> dict[str, Any]:
    """A JSON or YAML body as a mapping; an empty body is an empty mapping."""
    if len(body) > MAX_BODY:
        raise BadRequest(f"the body is over {MAX_BODY} bytes", status=413)
    if not body.strip():
        return {}
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadRequest(f"the body is not UTF-8 (byte {exc.start})", field="body") from None
    if kind == "json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise BadRequest(
                f"the body is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}",
                field="body",
            ) from None
    else:
        import yaml

        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" at line {mark.line + 1} column {mark.column + 1}" if mark else ""
            problem = getattr(exc, "problem", None) or "cannot be parsed"
            raise BadRequest(
                f"the body is not valid YAML: {problem}{where}", field="body"
            ) from None
    if data is None:
        return {}
    try:
        # JSON's \ud800-style escapes can name half a character, which no tool could be given.
        json.dumps(data, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        raise BadRequest("the body holds an unpaired surrogate, not text", field="body") from None
    if not isinstance(data, dict):
        raise BadRequest(f"the body must be a mapping, not {type(data).__name__}", field="body")
    return data


def run_request(data: dict[str, Any], *, toolchain: str | None = None) -> RunRequest:
    """Check a decoded body. ``toolchain`` (from ``?toolchain=``) makes it a toolchain's params."""
    known = {"cmd", "version", "args", "env", "params", "toolchain", "timeout"}
    unknown = sorted(set(data) - known)
    if unknown:
        raise BadRequest(
            f"unknown field {unknown[0]!r}; known: {', '.join(sorted(known))}", field=unknown[0]
        )
    toolchain = toolchain or _optional_str(data, "toolchain")
    request = RunRequest(env=_env(data.get("env")), timeout=_timeout(data.get("timeout")))
    if toolchain is not None:
        if not is_tool_name(toolchain):
            raise BadRequest(f"toolchain {toolchain!r} must be a plain name", field="toolchain")
        request.toolchain = toolchain
        params = data.get("params")
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
    request.cmd = cmd
    version = data.get("version")
    if version is not None:
        if isinstance(version, (int, float)) and not isinstance(version, bool):
            version = str(version)  # YAML reads `version: 0.1` as a number
        if not isinstance(version, str):
            raise BadRequest(
                "version must be a string such as 0.1.0, ^1.2 or latest", field="version"
            )
        request.version = version
    args = data.get("args", [])
    if isinstance(args, str):
        args = [args]
    if not isinstance(args, list):
        raise BadRequest("args must be a list of strings", field="args")
    for index, arg in enumerate(args):
        if isinstance(arg, bool) or not isinstance(arg, (str, int, float)):
            raise BadRequest(f"args[{index}] must be a string", field=f"args[{index}]")
    request.args = [str(arg) for arg in args]
    for index, arg in enumerate(request.args):
        if "\0" in arg:
            raise BadRequest(f"args[{index}] holds a NUL byte", field="args")
    return request


def _optional_str(data: dict[str, Any], key: str) -> str | None:
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise BadRequest(f"{key} must be a string", field=key)
    return value


def _env(raw: Any) -> dict[str, str]:
    """A mapping, or the seed's list form (``- foo:bar`` or ``- foo=bar``)."""
    if raw is None:
        return {}
    if isinstance(raw, list):
        pairs: dict[str, Any] = {}
        for index, item in enumerate(raw):
            if isinstance(item, dict) and len(item) == 1:
                pairs.update(item)
                continue
            text = str(item)
            cut = min((i for i in (text.find("="), text.find(":")) if i > 0), default=-1)
            if cut < 0:
                raise BadRequest(f"env[{index}] must be NAME=value", field=f"env[{index}]")
            pairs[text[:cut].strip().lstrip("-").strip()] = text[cut + 1 :]
        raw = pairs
    if not isinstance(raw, dict):
        raise BadRequest("env must be a mapping of names to strings", field="env")
    env: dict[str, str] = {}
    for name, value in raw.items():
        if not isinstance(name, str) or not name or "=" in name or "\0" in name:
            raise BadRequest(f"env name {name!r} is not a valid variable name", field="env")
        if isinstance(value, (dict, list)) or value is None:
            raise BadRequest(f"env {name!r} must be a string", field=f"env.{name}")
        env[name] = str(value).lower() if isinstance(value, bool) else str(value)
        if "\0" in env[name]:
            raise BadRequest(f"env {name!r} holds a NUL byte", field=f"env.{name}")
    return env


def _timeout(raw: Any) -> float | None:
    if raw is None:
        return None
    from ..toolchain import parse_duration

    try:
        return parse_duration(raw)
    except ValueError as exc:
        raise BadRequest(f"timeout must be {exc}", field="timeout") from None
