"""The tool manifest, ``tool.toml``: what a tool version is and how to run it."""

from __future__ import annotations

import sys
from pathlib import Path

from ..errors import ConfigError
from ..records import field, record
from .versions import is_tool_name, is_version

# `typing` costs milliseconds at start-up; annotations alone never need it at run time.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

MANIFEST_NAME = "tool.toml"
PLATFORMS = ("windows", "linux", "macos")
KINDS = ("bundled", "system", "wasm")
DEFAULT_WASM_MEMORY = 256 * 1024**2  # bytes of linear memory a WASM tool may use, unless it says
PAGE = 64 * 1024  # a WebAssembly page: memory grows by whole pages
MAX_WASM_MEMORY = 4 * 1024**3  # all that wasm32 can address
_TOP_KEYS = {
    "name",
    "version",
    "description",
    "command",
    "encoding",
    "kind",
    "env",
    "platform",
    "files",
    "accept_env",
    "wasm",
}
_PLATFORM_KEYS = {"command", "env"}
_WASM_KEYS = {"memory", "read_only"}


def is_generated(relative: str) -> bool:
    """Files Python writes beside a tool's scripts when it runs; never part of a tool."""
    return "__pycache__" in relative.split("/")


def current_platform() -> str:
    if sys.platform.startswith("win"):
        return "windows"
    if sys.platform == "darwin":
        return "macos"
    return "linux"


@record(frozen=True)
class PlatformOverride:
    """What one platform changes in a tool's manifest."""

    command: tuple[str, ...] | None = None
    env: dict[str, str] = field(default_factory=dict)


@record(frozen=True)
class WasmSettings:
    """A WASM tool's sandbox, from its ``[wasm]`` table: how much linear memory it may grow
    to, and the folders it may read besides the workspace (``{tool_dir}`` expanded)."""

    memory: int = DEFAULT_WASM_MEMORY
    read_only: tuple[str, ...] = ()

    def folders(self, tool_dir: Path) -> tuple[Path, ...]:
        """The read-only folders, ``{tool_dir}`` filled in."""
        return tuple(Path(expand(f, tool_dir=tool_dir, python="")) for f in self.read_only)


@record(frozen=True)
class Manifest:
    """A tool version's tool.toml."""

    name: str
    version: str
    command: tuple[str, ...]
    description: str = ""
    encoding: str = "utf-8"
    kind: str = "bundled"
    env: dict[str, str] = field(default_factory=dict)
    platforms: dict[str, PlatformOverride] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)  # relative posix path -> sha256
    accept_env: tuple[str, ...] = ()  # env names remote callers may set (NAME, PREFIX_*)
    wasm: WasmSettings | None = None  # set for, and only for, kind "wasm"

    @property
    def is_system(self) -> bool:
        return self.kind == "system"

    @property
    def is_wasm(self) -> bool:
        return self.kind == "wasm"

    def command_for(self, platform: str, *, tool_dir: Path, python: str) -> list[str]:
        """The argv to start this tool on ``platform``, with ``{tool_dir}``/``{python}`` filled."""
        override = self.platforms.get(platform)
        command = override.command if override and override.command else self.command
        return [expand(item, tool_dir=tool_dir, python=python) for item in command]

    def env_for(self, platform: str) -> dict[str, str]:
        override = self.platforms.get(platform)
        return {**self.env, **(override.env if override else {})}


def expand(item: str, *, tool_dir: Path, python: str) -> str:
    return item.replace("{tool_dir}", str(tool_dir)).replace("{python}", python)


def load_manifest(path: Path, *, source: str | None = None) -> Manifest:
    """Read and check ``path``; every problem found is named with the file and field.

    ``source`` names the file in messages when ``path`` is a copy (a staging folder).
    """
    source = source or str(path)
    import tomllib

    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{source}: no such manifest") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{source}: not valid TOML: {exc}") from None
    return manifest_from_dict(data, source=source)


def manifest_from_dict(data: dict[str, Any], *, source: str) -> Manifest:
    problems: list[str] = []

    def problem(field_name: str, why: str) -> None:
        problems.append(f"{source}: field '{field_name}': {why}")

    for key in data:
        if key not in _TOP_KEYS:
            problem(key, f"unknown field (known: {', '.join(sorted(_TOP_KEYS))})")

    name = data.get("name")
    if not isinstance(name, str) or not is_tool_name(name):
        problem("name", "required; letters, digits, '.', '_' and '-'")
    version = data.get("version")
    if not isinstance(version, str):
        problem("version", 'required, a string such as "1.2.0" (quote it)')
    elif not is_version(version):
        problem("version", f"{version!r} is not a SemVer version (MAJOR.MINOR.PATCH)")
    kind = data.get("kind", "bundled")
    if kind not in KINDS:
        problem("kind", f"must be one of {', '.join(KINDS)}")
    command = _string_list(data.get("command"), "command", problem)
    if command is not None and not command:
        problem("command", "must name a program")
    if "command" not in data:
        problem("command", 'required, an argv list such as ["{python}", "{tool_dir}/x.py"]')
    description = data.get("description", "")
    if not isinstance(description, str):
        problem("description", "must be a string")
    encoding = data.get("encoding", "utf-8")
    if not isinstance(encoding, str) or not _known_encoding(encoding):
        problem("encoding", f"{encoding!r} is not an encoding Python knows")
    env = _string_map(data.get("env", {}), "env", problem)

    platforms: dict[str, PlatformOverride] = {}
    raw_platforms = data.get("platform", {})
    if not isinstance(raw_platforms, dict):
        problem("platform", "must be a table of windows/linux/macos tables")
        raw_platforms = {}
    for platform, raw in raw_platforms.items():
        where = f"platform.{platform}"
        if platform not in PLATFORMS:
            problem(where, f"unknown platform (known: {', '.join(PLATFORMS)})")
            continue
        if not isinstance(raw, dict):
            problem(where, "must be a table")
            continue
        for key in raw:
            if key not in _PLATFORM_KEYS:
                problem(f"{where}.{key}", "unknown field (known: command, env)")
        platform_command = _string_list(raw.get("command"), f"{where}.command", problem)
        platform_env = _string_map(raw.get("env", {}), f"{where}.env", problem)
        platforms[platform] = PlatformOverride(
            tuple(platform_command) if platform_command else None, platform_env or {}
        )

    files = _string_map(data.get("files", {}), "files", problem) or {}
    for relative, digest in files.items():
        if not _is_sha256(digest):
            problem(f"files.{relative}", "must be a sha256 in hex (64 characters)")
        if relative.startswith("/") or ".." in relative.split("/") or "\\" in relative:
            problem(f"files.{relative}", "must be a relative path inside the tool folder")
    if kind == "system" and files:
        problem("files", "a system tool wraps a program on PATH and ships no files")
    accept_env = data.get("accept_env", [])
    if not isinstance(accept_env, list) or not all(isinstance(v, str) for v in accept_env):
        problem("accept_env", 'must be a list of variable names or patterns, ["NAME", "PREFIX_*"]')
        accept_env = []
    from ..policy import env_pattern_problem

    for pattern in accept_env:
        why = env_pattern_problem(pattern)
        if why:
            problem("accept_env", why)

    wasm = _wasm_settings(data, kind, command, files, problem)

    if problems:
        raise ConfigError("\n".join(problems) if len(problems) > 1 else problems[0])
    assert isinstance(name, str) and isinstance(version, str) and command is not None
    return Manifest(
        name=name,
        version=version,
        command=tuple(command),
        description=description,
        encoding=encoding,
        kind=kind,
        env=env or {},
        platforms=platforms,
        files=files,
        accept_env=tuple(accept_env),
        wasm=wasm,
    )


def _wasm_settings(
    data: dict[str, Any], kind: Any, command: list[str] | None, files: dict[str, str], problem: Any
) -> WasmSettings | None:
    """The ``[wasm]`` table of a WASM tool, checked; its module is the command's first item,
    a file the tool ships (so its sha256 is checked like any other file's)."""
    raw = data.get("wasm")
    if kind != "wasm":
        if raw is not None:
            problem("wasm", 'only a tool of kind = "wasm" has a [wasm] table')
        return None
    if command:
        module = command[0].removeprefix("{tool_dir}/")
        # An empty [files] is a manifest not hashed yet (`registry rehash` reads it first).
        if module == command[0] or (files and module not in files):
            why = 'starts with the module, "{tool_dir}/NAME.wasm", a file listed in [files]'
            problem("command", f"a WASM tool's command {why}")
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        problem("wasm", "must be a table (memory, read_only)")
        return WasmSettings()
    for key in raw:
        if key not in _WASM_KEYS:
            problem(f"wasm.{key}", f"unknown field (known: {', '.join(sorted(_WASM_KEYS))})")
    memory = DEFAULT_WASM_MEMORY
    if "memory" in raw:
        from ..units import parse_size

        try:
            if isinstance(raw["memory"], bool) or not isinstance(raw["memory"], str | int):
                raise ValueError("a size such as 64MB")
            memory = parse_size(str(raw["memory"]))
        except ValueError as exc:
            problem("wasm.memory", f"{raw['memory']!r} is not {exc}")
        else:
            if memory < PAGE or memory > MAX_WASM_MEMORY:
                problem("wasm.memory", "must be at least 64KB (a page) and at most 4GB (wasm32)")
    read_only = _string_list(raw.get("read_only", []), "wasm.read_only", problem) or []
    for folder in read_only:
        relative = folder.removeprefix("{tool_dir}/")
        if relative == folder and not _is_absolute(folder):
            problem("wasm.read_only", f"{folder!r}: an absolute folder, or one under {{tool_dir}}/")
        elif ".." in relative.replace("\\", "/").split("/"):
            problem("wasm.read_only", f"{folder!r}: '..' is not allowed")
    return WasmSettings(memory, tuple(read_only))


def _is_absolute(folder: str) -> bool:
    from pathlib import PurePosixPath, PureWindowsPath

    return PurePosixPath(folder).is_absolute() or PureWindowsPath(folder).is_absolute()


def manifest_from_receipt(data: dict[str, Any]) -> Manifest:
    """A manifest toolrun itself checked and stored at install time: only its shape is
    checked again (a TypeError or KeyError for one damaged since)."""
    if not isinstance(data.get("files", {}), dict) or not all(
        isinstance(part, str) for part in data["command"]
    ):
        raise TypeError("not a manifest")
    return Manifest(
        name=data["name"],
        version=data["version"],
        command=tuple(data["command"]),
        description=data.get("description", ""),
        encoding=data.get("encoding", "utf-8"),
        kind=data.get("kind", "bundled"),
        env=data.get("env", {}),
        platforms={
            name: PlatformOverride(
                tuple(raw["command"]) if raw.get("command") else None, raw.get("env", {})
            )
            for name, raw in data.get("platform", {}).items()
        },
        files=data.get("files", {}),
        accept_env=tuple(data.get("accept_env", ())),
        wasm=_receipt_wasm(data),
    )


def _receipt_wasm(data: dict[str, Any]) -> WasmSettings | None:
    if data.get("kind") != "wasm":
        return None
    raw = data.get("wasm", {})
    return WasmSettings(
        int(raw.get("memory", DEFAULT_WASM_MEMORY)), tuple(raw.get("read_only", ()))
    )


def manifest_to_dict(manifest: Manifest) -> dict[str, Any]:
    """The manifest as TOML-ready data (the receipt keeps a copy)."""
    data: dict[str, Any] = {
        "name": manifest.name,
        "version": manifest.version,
        "description": manifest.description,
        "command": list(manifest.command),
        "encoding": manifest.encoding,
        "kind": manifest.kind,
    }
    if manifest.env:
        data["env"] = dict(manifest.env)
    if manifest.platforms:
        data["platform"] = {
            name: {
                **({"command": list(o.command)} if o.command else {}),
                **({"env": dict(o.env)} if o.env else {}),
            }
            for name, o in manifest.platforms.items()
        }
    if manifest.accept_env:
        data["accept_env"] = list(manifest.accept_env)
    if manifest.wasm is not None:
        data["wasm"] = {"memory": manifest.wasm.memory, "read_only": list(manifest.wasm.read_only)}
    data["files"] = dict(manifest.files)
    return data


def _string_list(value: Any, where: str, problem: Any) -> list[str] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        problem(where, "must be a list of strings (an argv list, never a shell line)")
        return None
    return value


def _string_map(value: Any, where: str, problem: Any) -> dict[str, str] | None:
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        problem(where, "must be a table of string values")
        return None
    return value


def _is_sha256(text: str) -> bool:
    return len(text) == 64 and all(c in "0123456789abcdef" for c in text.lower())


def _known_encoding(name: str) -> bool:
    import codecs

    try:
        codecs.lookup(name)
    except LookupError:
        return False
    return True
