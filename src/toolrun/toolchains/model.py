"""Toolchain files: YAML loaded with its line marks, checked whole, every error at once.

The seed's format stays valid as written: a top-level ``toolchain:`` list of single-key maps
(the key is the step id), each with ``cmd``, ``version``, ``args`` and ``env``.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..digests import sha256_hex
from ..errors import NotFoundError, ToolrunError, UsageError
from ..records import field, record, replace
from ..schedules import Schedule
from ..selectors import Selector
from .expressions import (
    Template,
)

# `typing` costs milliseconds at start-up; annotations alone never need it at run time.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

PARAM_TYPES = ("string", "boolean", "integer", "number")
ADHOC_MARK = "# toolrun exec "  # the first line of a one-tool run's toolchain text


class ToolchainError(ToolrunError):
    """A toolchain file that cannot run; the message lists every problem, file:line:col."""

    exit_code = 3


@record(frozen=True)
class ParamSpec:
    """A toolchain parameter: its type, default and choices."""

    name: str
    type: str = "string"
    default: Any = None
    required: bool = False
    description: str = ""
    choices: tuple[Any, ...] = ()


@record(frozen=True)
class RetryPolicy:
    """How often a step is tried again, and how long it waits before each try."""

    max: int = 0  # extra attempts after the first
    delay: float = 0.0
    backoff: float = 1.0

    def delay_before(self, attempt: int) -> float:
        """Seconds to wait before ``attempt`` (2 is the first retry)."""
        return self.delay * self.backoff ** max(attempt - 2, 0)


@record(frozen=True)
class PlatformStep:
    """What one platform changes in a step."""

    args: tuple[Template, ...] | None = None
    env: dict[str, Template] | None = None


@record(frozen=True)
class Step:
    """A step of a toolchain: a tool, its arguments and the rules for running it."""

    id: str
    cmd: str
    version: str  # "" is latest
    args: tuple[Template, ...] = ()
    env: dict[str, Template] = field(default_factory=dict)
    needs: tuple[str, ...] = ()
    condition: Template | None = None
    timeout: float | None = None
    retries: RetryPolicy = RetryPolicy()
    continue_on_error: bool = False
    by_platform: dict[str, PlatformStep] = field(default_factory=dict)
    description: str = ""
    line: int = 0
    runs_on: Selector = Selector()  # empty: the toolchain's, or anywhere

    @property
    def spec_text(self) -> str:
        if not self.version:
            return self.cmd
        joint = "" if self.version[0] in "=<>!~^" else "@"  # uexp==0.1.0, uexp@0.1
        return f"{self.cmd}{joint}{self.version}"

    def for_platform(self, platform: str) -> Step:
        override = self.by_platform.get(platform)
        if override is None:
            return self
        return replace(
            self,
            args=override.args if override.args is not None else self.args,
            env={**self.env, **(override.env or {})},
        )


@record(frozen=True)
class Toolchain:
    """A loaded toolchain."""

    name: str
    text: str
    steps: tuple[Step, ...]
    path: Path | None = None
    description: str = ""
    params: dict[str, ParamSpec] = field(default_factory=dict)
    env: dict[str, Template] = field(default_factory=dict)
    timeout: float | None = None
    max_parallel: int = 4
    accept_env: tuple[str, ...] = ()  # env names remote callers may set (NAME, PREFIX_*)
    pass_env: tuple[str, ...] = ()  # names of the CLI's own env a local run passes on
    runs_on: Selector = Selector()
    priority: int = 0  # higher starts first (toolrun.priorities)
    schedules: tuple[Schedule, ...] = ()  # when the daemon runs it by itself
    warnings: tuple[str, ...] = ()  # what loading it found odd, file:line:col, said on use

    @property
    def is_adhoc(self) -> bool:
        """One tool run by itself (``toolrun exec``, ``/cmd``), not a toolchain file."""
        return self.text.startswith(ADHOC_MARK)

    @property
    def sha256(self) -> str:
        return sha256_hex(self.text.encode("utf-8"))

    def step(self, step_id: str) -> Step:
        return next(step for step in self.steps if step.id == step_id)


# -- finding ----------------------------------------------------------------------------------


def search_dirs(cwd: Path, config_dir: Path) -> list[Path]:
    """./toolchains, then TOOLRUN_TOOLCHAINS (os.pathsep-separated), then the config dir's."""
    dirs = [cwd / "toolchains"]
    extra = os.environ.get("TOOLRUN_TOOLCHAINS", "")
    dirs.extend(Path(part) for part in extra.split(os.pathsep) if part)
    dirs.append(config_dir / "toolchains")
    return dirs


def find_toolchain(name: str, dirs: list[Path]) -> Path:
    candidate = Path(name)
    if candidate.suffix in (".yaml", ".yml") and _is_file(candidate):
        return candidate
    for folder in dirs:
        for suffix in (".yaml", ".yml"):
            path = folder / f"{name}{suffix}"
            if _is_file(path):
                return path
    known = sorted({path.stem for folder in dirs for path in list_toolchain_files(folder)})
    import difflib

    close = difflib.get_close_matches(name, known, n=3)
    hint = f"did you mean {', '.join(close)}?" if close else None
    searched = ", ".join(str(d) for d in dirs)
    raise NotFoundError(f"no toolchain named {name!r} (searched {searched})", hint=hint)


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except OSError:  # a name too long for the file system names no file either
        return False


def list_toolchain_files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file())


def toolchain_files(folders: list[Path]) -> list[Path]:
    """Each toolchain's file: the first of a name wins, as it does for a run."""
    seen: set[str] = set()
    found: list[Path] = []
    for folder in folders:
        for path in list_toolchain_files(folder):
            if path.stem not in seen:
                seen.add(path.stem)
                found.append(path)
    return found


# -- loading ----------------------------------------------------------------------------------


def load_toolchain(path: Path) -> Toolchain:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ToolchainError(f"{path}: cannot read: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise ToolchainError(f"{path}: not UTF-8 text: {exc}") from None
    return parse_toolchain(text, name=path.stem, source=str(path), path=path)


def parse_toolchain(text: str, *, name: str, source: str, path: Path | None = None) -> Toolchain:
    """Load a toolchain from YAML text; ToolchainError lists every problem, file:line:col."""
    from .loader import parse_toolchain_text

    return parse_toolchain_text(text, name=name, source=source, path=path)


def type_of(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    return "string"


def scalar_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


def convert_param(spec: ParamSpec, value: Any) -> Any:
    """A value (from YAML, the CLI or JSON) as the parameter's type; UsageError if it is not."""
    try:
        if spec.type == "boolean":
            if isinstance(value, bool):
                return value
            lowered = str(value).strip().lower()
            if lowered in ("true", "yes", "1", "on"):
                return True
            if lowered in ("false", "no", "0", "off"):
                return False
            raise ValueError
        if spec.type == "integer":
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError
            return int(str(value).strip()) if isinstance(value, str) else int(value)
        if spec.type == "number":
            if isinstance(value, bool):
                raise ValueError
            number = float(value)
            if not abs(number) < float("inf"):  # NaN and infinities have no JSON form
                raise ValueError
            return number
    except (ValueError, OverflowError):
        raise UsageError(f"parameter {spec.name!r} must be a {spec.type}, not {value!r}") from None
    if isinstance(value, list | dict):
        raise UsageError(f"parameter {spec.name!r} must be a string, not {value!r}")
    return scalar_text(value) if not isinstance(value, str) else value


def bind_params(toolchain: Toolchain, given: dict[str, Any]) -> dict[str, Any]:
    """Defaults plus given values, converted and checked; every problem reported at once.

    The error's ``field`` names the first parameter at fault (``params.NAME``)."""
    problems = []
    first: str | None = None
    for name in given:
        if name not in toolchain.params:
            first = first or name
            import difflib

            close = difflib.get_close_matches(name, list(toolchain.params), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            known = ", ".join(toolchain.params) or "none"
            problems.append(f"unknown parameter {name!r}{hint}; {toolchain.name} takes: {known}")
    values: dict[str, Any] = {}
    for name, spec in toolchain.params.items():
        if name in given:
            try:
                values[name] = convert_param(spec, given[name])
            except UsageError as exc:
                problems.append(exc.message)
                first = first or name
                continue
        elif spec.default is not None:
            values[name] = spec.default
        elif spec.required:
            problems.append(f"missing required parameter {name!r} ({spec.type}); pass {name}=...")
            first = first or name
            continue
        else:
            values[name] = None
        if spec.choices and values[name] not in spec.choices:
            choices = ", ".join(map(str, spec.choices))
            problems.append(f"parameter {name!r} must be one of {choices}, not {values[name]!r}")
            first = first or name
    if problems:
        raise UsageError("\n".join(problems), field=f"params.{first}" if first else "params")
    return values


def parse_assignments(pairs: list[str]) -> dict[str, str]:
    """``key=value`` words from the command line."""
    values: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UsageError(f"expected key=value, got {pair!r}")
        values[key.strip()] = value
    return values
