"""A toolchain's lock: beside ``NAME.yaml``, ``NAME.lock`` pins each step's tool to one
version from one registry, with the archive's sha256 and size for every platform it names.

The digests come from what a registry already says without a download: an HTTP registry's
index, a folder registry's ``tool.toml`` (which itself pins every file's sha256). So a lock
for another platform costs nothing but the index.
"""

from __future__ import annotations

import hashlib
import platform as _platform
from pathlib import Path

from ..errors import ConfigError, IntegrityError, NotFoundError, UsageError
from ..records import field, record
from .manifest import MANIFEST_NAME, current_platform
from .registry import FolderRegistry, HttpRegistry
from .versions import parse_spec

TYPE_CHECKING = False
if TYPE_CHECKING:
    from .installer import InstalledTool
    from .registry import Registry
    from .resolver import ToolResolver

LOCK_FORMAT = 1
LOCK_SUFFIX = ".lock"


class LockRefused(IntegrityError):
    """A --locked run would use something its lock does not name (exit 5; HTTP 409)."""


@record(frozen=True)
class Digest:
    """What one platform installs: the archive's (or a folder's manifest's) sha256 and size."""

    sha256: str
    size: int


@record(frozen=True)
class LockedTool:
    spec: str  # as the toolchain asks for it: the lock's key
    name: str
    version: str
    registry: str
    location: str
    platforms: dict[str, Digest] = field(default_factory=dict)


@record(frozen=True)
class Lock:
    toolchain_sha256: str  # of the toolchain's text when locked: a changed file is stale
    platforms: tuple[str, ...]
    tools: dict[str, LockedTool] = field(default_factory=dict)


def this_platform() -> str:
    """``linux-x64``, ``windows-arm64``...: the OS as manifests name it, and the machine."""
    machine = _platform.machine().lower()
    arch = {"x86_64": "x64", "amd64": "x64", "aarch64": "arm64"}.get(machine, machine or "any")
    return f"{current_platform()}-{arch}"


def parse_platforms(text: str | None) -> tuple[str, ...]:
    """``--platform linux-x64,windows-x64``; none given means this machine's."""
    if not text:
        return (this_platform(),)
    names = tuple(dict.fromkeys(part.strip() for part in text.split(",") if part.strip()))
    for name in names:
        if not all(c.isalnum() or c in "-_" for c in name):
            raise UsageError(f"--platform: {name!r} is not a platform name (like linux-x64)")
    if not names:
        raise UsageError("--platform: name at least one platform (like linux-x64)")
    return names


def lock_path(toolchain_path: Path) -> Path:
    return toolchain_path.with_suffix(LOCK_SUFFIX)


@record(frozen=True)
class Locking:
    """What a lock is made for and checked against: a toolchain file, the sha256 of its text
    and each distinct tool spec its steps ask for, in step order (``toolchains/`` reads it:
    this layer knows no toolchains)."""

    path: Path
    sha256: str
    specs: tuple[str, ...]


def digest_of(registry: Registry, name: str, version: str) -> Digest:
    """What ``registry`` says ``name version`` is, read from its index, not downloaded."""
    if isinstance(registry, HttpRegistry):
        entry = registry.entry(name, version)
        return Digest(entry.sha256, entry.size)
    if isinstance(registry, FolderRegistry):
        data = (registry.version_dir(name, version) / MANIFEST_NAME).read_bytes()
        return Digest(hashlib.sha256(data).hexdigest(), len(data))
    raise ConfigError(f"registry {registry.name!r} cannot vouch for {name} {version}")


def build_lock(
    target: Locking,
    resolver: ToolResolver,
    platforms: tuple[str, ...],
    *,
    previous: Lock | None = None,
) -> Lock:
    """Resolve every step's spec against the registries (not the installed tools: a lock says
    where a version comes from). A ``previous`` lock's versions are kept while their spec is
    still asked for; only ``--upgrade`` (no previous) moves them."""
    tools: dict[str, LockedTool] = {}
    for text in target.specs:
        spec = parse_spec(text)
        offered = resolver.available([spec.name]).versions.get(spec.name, {})
        kept = previous.tools.get(text) if previous is not None else None
        if kept is not None and kept.version in offered:
            version = kept.version
        else:
            best = spec.pick(offered)
            if best is None:
                known = ", ".join(offered) or "none"
                raise NotFoundError(
                    f"{target.path}: no registry offers {text} (known versions: {known})"
                )
            version = best
        registry = offered[version]
        digest = digest_of(registry, spec.name, version)
        tools[text] = LockedTool(
            text,
            spec.name,
            version,
            registry.name,
            registry.location,
            {name: digest for name in platforms},
        )
    return Lock(target.sha256, platforms, tools)


def check_lock(lock: Lock | None, target: Locking) -> list[str]:
    """Why the lock cannot be used as it is (empty: it is complete and current)."""
    if lock is None:
        return [f"{lock_path(target.path)} does not exist"]
    problems: list[str] = []
    if lock.toolchain_sha256 != target.sha256:
        problems.append(f"{target.path} changed since it was locked")
    wanted = target.specs
    for text in wanted:
        locked = lock.tools.get(text)
        if locked is None:
            problems.append(f"{text} is not locked")
            continue
        missing = [name for name in lock.platforms if name not in locked.platforms]
        if missing:
            problems.append(f"{text} has no digest for {', '.join(missing)}")
    problems.extend(
        f"{text} is locked but no step uses it" for text in lock.tools if text not in wanted
    )
    return problems


def check_offers(lock: Lock, resolver: ToolResolver) -> list[str]:
    """Where the registries no longer agree with the lock: a version gone, or offered with
    another digest than the one locked (a republished archive)."""
    problems: list[str] = []
    platform = this_platform()
    for text, entry in lock.tools.items():
        registry = _registry_for(resolver, entry)
        if registry is None:
            problems.append(f"{text}: no registry offers {entry.name} {entry.version} any more")
            continue
        wanted = entry.platforms.get(platform) or next(iter(entry.platforms.values()), None)
        offer = digest_of(registry, entry.name, entry.version)
        if wanted is not None and offer.sha256 != wanted.sha256:
            problems.append(
                f"{text}: {registry.name} now offers {entry.name} {entry.version} with sha256 "
                f"{offer.sha256}, not the locked {wanted.sha256}"
            )
    return problems


def shown_location(location: str, lock_file: Path) -> str:
    """A folder registry's path as the lock keeps it: relative to the lock's folder when it
    is near, so a lock committed beside its toolchain reads the same on every checkout."""
    if "://" in location:
        return location
    import os

    try:
        relative = os.path.relpath(location, lock_file.parent)
    except ValueError:  # another drive, on Windows
        return location
    return Path(relative).as_posix() if not relative.startswith("../../..") else location


def write_lock(path: Path, lock: Lock) -> None:
    import tomlkit

    document = tomlkit.document()
    document.add(tomlkit.comment("Written by `toolrun lock`; `toolrun run --locked` uses it."))
    document["format"] = LOCK_FORMAT
    document["toolchain_sha256"] = lock.toolchain_sha256
    document["platforms"] = list(lock.platforms)
    tools = tomlkit.table(is_super_table=True)
    for text, tool in sorted(lock.tools.items()):
        table = tomlkit.table()
        table["name"] = tool.name
        table["version"] = tool.version
        table["registry"] = tool.registry
        table["location"] = shown_location(tool.location, path)
        digests = tomlkit.table(is_super_table=True)
        for name, digest in sorted(tool.platforms.items()):
            entry = tomlkit.table()
            entry["sha256"] = digest.sha256
            entry["size"] = digest.size
            digests[name] = entry
        table["platforms"] = digests
        tools[text] = table
    document["tools"] = tools
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(tomlkit.dumps(document), encoding="utf-8")
    temporary.replace(path)  # a reader never sees half a lock


def read_lock(path: Path) -> Lock | None:
    """The lock at ``path``, None when there is none; a damaged one is a ConfigError."""
    import tomllib

    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not a lock file: {exc}") from None
    try:
        if data.get("format") != LOCK_FORMAT:
            raise ValueError(f"format must be {LOCK_FORMAT}")
        tools = {}
        for text, raw in data.get("tools", {}).items():
            digests = {
                name: Digest(str(entry["sha256"]), int(entry["size"]))
                for name, entry in raw.get("platforms", {}).items()
            }
            tools[text] = LockedTool(
                text,
                str(raw["name"]),
                str(raw["version"]),
                str(raw["registry"]),
                str(raw["location"]),
                digests,
            )
        return Lock(str(data["toolchain_sha256"]), tuple(str(p) for p in data["platforms"]), tools)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ConfigError(
            f"{path}: a damaged lock file ({exc})", hint="rewrite it: toolrun lock --upgrade"
        ) from None


@record(frozen=True)
class LockInUse:
    """The lock a run keeps to (``run --locked``): read once, with its own file's sha256,
    which the run records."""

    path: Path
    sha256: str
    lock: Lock


def lock_for_run(toolchain_path: Path | None, toolchain_sha256: str) -> LockInUse:
    """The toolchain's lock, refused (IntegrityError, exit 5) when it is missing, damaged or
    stale: a locked run uses exactly what was locked, or nothing."""
    if toolchain_path is None:
        raise UsageError("--locked needs a toolchain file (an ad-hoc run has no lock)")
    path = lock_path(toolchain_path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise LockRefused(
            f"{path} does not exist: a --locked run needs the toolchain's lock",
            hint=f"write it: toolrun lock {toolchain_path}",
        ) from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    try:
        lock = read_lock(path)
    except ConfigError as exc:
        raise LockRefused(exc.message, hint=exc.hint) from None
    assert lock is not None
    if lock.toolchain_sha256 != toolchain_sha256:
        raise LockRefused(
            f"{path}: {toolchain_path} changed since it was locked",
            hint=f"lock it again: toolrun lock {toolchain_path}",
        )
    return LockInUse(path, hashlib.sha256(raw).hexdigest(), lock)


def installed_digest(tool: InstalledTool) -> str:
    """What a lock's digest is compared with: the archive's sha256 for a tool installed from
    an HTTP registry, its ``tool.toml``'s for one copied from a folder registry."""
    if tool.archive_sha256:
        return tool.archive_sha256
    try:
        return hashlib.sha256((tool.path / MANIFEST_NAME).read_bytes()).hexdigest()
    except OSError:
        return ""


def locked_tool(
    used: LockInUse, spec_text: str, resolver: ToolResolver, *, may_install: bool = True
) -> InstalledTool:
    """The installed tool the lock names for ``spec_text``, installed from a registry whose
    index agrees with the lock when it is not here yet; IntegrityError for anything else."""
    from .resolver import WouldInstall

    entry = used.lock.tools.get(spec_text)
    if entry is None:
        raise LockRefused(f"{spec_text} is not in {used.path}", hint="lock it again: toolrun lock")
    platform = this_platform()
    wanted = entry.platforms.get(platform)
    if wanted is None:
        named = ", ".join(entry.platforms) or "none"
        raise LockRefused(
            f"{used.path}: {spec_text} has no digest for {platform} (it has: {named})",
            hint=f"lock it for this platform too: toolrun lock --platform {platform},{named}",
        )
    tool = resolver.installer.get(entry.name, entry.version)
    if tool is None:
        registry = _registry_for(resolver, entry)
        if registry is None:
            raise NotFoundError(
                f"{entry.name} {entry.version} (locked in {used.path}) is not installed and "
                "no registry offers it"
            )
        offer = digest_of(registry, entry.name, entry.version)
        if offer.sha256 != wanted.sha256:
            raise LockRefused(
                f"{registry.name} offers {entry.name} {entry.version} with sha256 "
                f"{offer.sha256}, but {used.path} locked {wanted.sha256}: not installed"
            )
        if not may_install:
            raise WouldInstall(f"{entry.name} {entry.version}")
        result = resolver.installer.install(registry, entry.name, entry.version)
        if not result.already_installed:
            resolver.newly_installed.append(result.tool)
        tool = result.tool
    found = installed_digest(tool)
    if found != wanted.sha256:
        raise LockRefused(
            f"{entry.name} {entry.version} as installed (from {tool.source or 'unknown'}) has "
            f"sha256 {found or 'unknown'}, but {used.path} locked {wanted.sha256} "
            f"(from {entry.registry}); reinstall it: toolrun tool remove "
            f"{entry.name}=={entry.version}"
        )
    return tool


def _registry_for(resolver: ToolResolver, entry: LockedTool) -> Registry | None:
    """The registry the lock names when it is configured here and offers the version, else the
    first that offers it (its digest is checked against the lock all the same)."""
    offered = resolver.available([entry.name]).versions.get(entry.name, {})
    named = [r for r in resolver.registries if r.name == entry.registry]
    for registry in named:
        if registry is offered.get(entry.version):
            return registry
    for registry in named:
        if resolver.offline and not registry.is_local:
            continue
        if entry.version in _versions(registry, entry.name):
            return registry
    return offered.get(entry.version)


def _versions(registry: Registry, name: str) -> list[str]:
    from ..errors import RegistryUnavailable

    try:
        return list(registry.versions(name))
    except RegistryUnavailable:
        return []
