"""Which installed tools have newer versions, by policy, and the stamp that keeps update
checks to one a day.

A tool may be installed in several versions side by side, so "outdated" is asked per *line*:
the installed versions a policy treats as one (``patch``: the same X.Y, ``minor``: the same
X, ``major``: all of them). Each line's highest installed version is compared with the
highest version the registries offer within that line. The numbers are read literally, 0.x
included: under ``minor``, 0.1.0 -> 0.2.0 counts.
"""

from __future__ import annotations

from pathlib import Path

from ..cache_files import read_json, write_json
from ..records import field, record
from .versions import VersionKey, is_prerelease, version_key

# `typing` costs milliseconds at start-up; annotations alone never need it at run time.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping

    from .resolver import Available, ToolResolver

POLICIES = ("patch", "minor", "major")
AUTO_UPDATE_MODES = ("off", "notify", "install")
DAY = 86400.0
STAMP_NAME = "update-check.json"
# A check started this long ago and never finished (its process killed) may be started again.
CHECK_STALE = 3600.0


@record(frozen=True)
class Outdated:
    """One line of installed versions with a newer version within the policy."""

    name: str
    installed: str  # the line's highest installed version
    wanted: str  # the highest version offered within the policy
    latest: str  # the highest version offered at all
    registry: str  # where ``wanted`` comes from
    pinned_by: tuple[str, ...] = ()  # what pins ``installed`` (a lock, a toolchain step)


def policy_line(key: VersionKey, policy: str) -> tuple[int, ...]:
    """What a newer version must share with ``key`` to count under ``policy``."""
    if policy == "patch":
        return key[:2]
    if policy == "minor":
        return key[:1]
    return ()


def find_outdated(
    installed: Mapping[str, Iterable[str]],
    offered: Mapping[str, Mapping[str, str]],
    policy: str,
    *,
    pre: bool = False,
    pins: Mapping[tuple[str, str], tuple[str, ...]] | None = None,
) -> list[Outdated]:
    """``installed``: name -> versions; ``offered``: name -> version -> registry name.
    Prereleases are offered only with ``pre``."""
    found: list[Outdated] = []
    for name in sorted(installed):
        candidates = [
            (key, version, registry)
            for version, registry in offered.get(name, {}).items()
            if (key := version_key(version)) is not None and (pre or not is_prerelease(key))
        ]
        if not candidates:
            continue
        latest = max(candidates)[1]
        lines: dict[tuple[int, ...], tuple[VersionKey, str]] = {}
        for version in installed[name]:
            key = version_key(version)
            if key is None:
                continue
            line = policy_line(key, policy)
            if line not in lines or key > lines[line][0]:
                lines[line] = (key, version)
        for line, (current_key, current) in sorted(lines.items()):
            within = [c for c in candidates if policy_line(c[0], policy) == line]
            if not within:
                continue
            best_key, best, registry = max(within)
            if best_key > current_key:
                pinned = (pins or {}).get((name, current), ())
                found.append(Outdated(name, current, best, latest, registry, tuple(pinned)))
    return found


@record(frozen=True)
class Survey:
    """What the registries offer beyond the installed tools, and beyond toolrun itself."""

    outdated: list[Outdated]
    itself: Outdated | None  # a newer toolrun, any release (what `self upgrade` installs)
    available: Available  # what was offered, with the registry of each version
    problems: list[str]  # registries that could not be asked


def survey(
    resolver: ToolResolver,
    policy: str,
    *,
    current: str | None,
    pre: bool = False,
    pins_for: Callable[[dict[str, list[str]]], Mapping[tuple[str, str], tuple[str, ...]]]
    | None = None,
) -> Survey:
    """Ask every registry (conditionally, once: see index_cache) about the installed tools
    and about toolrun, ``current`` being this toolrun's version as SemVer."""
    from .self_upgrade import SELF_NAME

    installer = resolver.installer
    installed = {name: installer.versions(name) for name in installer.names()}
    installed.pop(SELF_NAME, None)  # a verified wheel kept by `self upgrade`, not a tool
    installed = {name: versions for name, versions in installed.items() if versions}
    resolver.refresh()
    available = resolver.available([*installed, SELF_NAME])
    offered = {
        name: {version: registry.name for version, registry in versions.items()}
        for name, versions in available.versions.items()
    }
    pins = pins_for(installed) if pins_for is not None else {}
    rows = find_outdated(installed, offered, policy, pre=pre, pins=pins)
    itself = find_outdated({SELF_NAME: [current]}, offered, "major", pre=pre) if current else []
    return Survey(rows, itself[0] if itself else None, available, list(available.warnings))


# -- the stamp: <data dir>/update-check.json ----------------------------------------------------


@record
class UpdateStamp:
    """What the last update check found, and when a notice about it was shown."""

    checked_at: float = 0.0  # when a check last finished
    started_at: float = 0.0  # when one was last started (in the background)
    notified_at: float = 0.0  # when the last notice was printed
    mode: str = "off"  # the auto_update mode the check ran under
    outdated: list[Outdated] = field(default_factory=list)
    installed: list[str] = field(default_factory=list)  # "uexp 0.2.0", installed by the check
    self_newer: str | None = None  # a newer toolrun in the registries
    problems: list[str] = field(default_factory=list)  # registries that could not be asked

    def is_due(self, now: float) -> bool:
        """A check is due: none finished within a day, and none is under way."""
        under_way = self.started_at > self.checked_at and now - self.started_at < CHECK_STALE
        return now - self.checked_at >= DAY and not under_way

    def has_news(self) -> bool:
        return bool(self.outdated or self.installed or self.self_newer)

    def notice_pending(self) -> bool:
        """The last check found something no notice has told yet."""
        return self.has_news() and self.notified_at < self.checked_at


def stamp_path(data_dir: Path) -> Path:
    return data_dir / STAMP_NAME


def read_stamp(path: Path) -> UpdateStamp:
    """The stamp at ``path``; a missing or spoilt one reads as no check ever made."""
    raw = read_json(path)
    if not isinstance(raw, dict):
        return UpdateStamp()
    try:
        return UpdateStamp(
            checked_at=float(raw.get("checked_at", 0.0)),
            started_at=float(raw.get("started_at", 0.0)),
            notified_at=float(raw.get("notified_at", 0.0)),
            mode=str(raw.get("mode", "off")),
            outdated=[
                Outdated(
                    str(item["name"]),
                    str(item["installed"]),
                    str(item["wanted"]),
                    str(item["latest"]),
                    str(item["registry"]),
                    tuple(str(p) for p in item.get("pinned_by", ())),
                )
                for item in raw.get("outdated", [])
            ],
            installed=[str(item) for item in raw.get("installed", [])],
            self_newer=str(raw["self_newer"]) if raw.get("self_newer") else None,
            problems=[str(item) for item in raw.get("problems", [])],
        )
    except (KeyError, TypeError, ValueError, AttributeError):
        return UpdateStamp()


def write_stamp(path: Path, stamp: UpdateStamp) -> None:
    write_json(
        path,
        {
            "checked_at": stamp.checked_at,
            "started_at": stamp.started_at,
            "notified_at": stamp.notified_at,
            "mode": stamp.mode,
            "outdated": [outdated_json(item) for item in stamp.outdated],
            "installed": stamp.installed,
            "self_newer": stamp.self_newer,
            "problems": stamp.problems,
        },
    )


def outdated_json(item: Outdated) -> dict[str, object]:
    return {
        "name": item.name,
        "installed": item.installed,
        "wanted": item.wanted,
        "latest": item.latest,
        "registry": item.registry,
        "pinned_by": list(item.pinned_by),
    }


def notice_text(stamp: UpdateStamp, *, most: int = 3) -> str:
    """The one line that tells what the last check found."""
    parts: list[str] = []
    if stamp.installed:
        parts.append(f"auto_update installed {_some(stamp.installed, most)} (old versions kept)")
    waiting = [f"{o.name} {o.installed} -> {o.wanted}" for o in stamp.outdated]
    if waiting:
        parts.append(f"newer tools: {_some(waiting, most)} (toolrun tool outdated)")
    if stamp.self_newer:
        parts.append(f"toolrun {stamp.self_newer} is out (toolrun self upgrade)")
    return "; ".join(parts)


def _some(items: list[str], most: int) -> str:
    shown = ", ".join(items[:most])
    return shown if len(items) <= most else f"{shown} and {len(items) - most} more"
