"""Every schedule a daemon fires: those the toolchain files carry and those config.toml adds
(``[[schedules]]``, for toolchains the team would rather not edit), each toolchain file read
again only when it changed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..config import Config
from ..errors import ConfigError, ToolrunError
from ..records import record
from ..schedules import OVERLAP, Schedule, ScheduleError, parse_when, parse_zone
from ..toolchains.model import Toolchain, bind_params, load_toolchain, toolchain_files
from ..tools.versions import is_tool_name
from ..units import parse_duration

CONFIG_KEYS = ("name", "toolchain", "cron", "timezone", "params", "overlap", "catch_up")


@record(frozen=True)
class Catalog:
    """The schedules found, and what could not be read (each problem once, with its place)."""

    schedules: tuple[Schedule, ...]
    problems: tuple[str, ...] = ()

    def find(self, name: str) -> Schedule | None:
        return next((s for s in self.schedules if s.name == name), None)


class ScheduleCatalog:
    """Reads the schedules; keeps each toolchain file's reading while its size and time stay."""

    def __init__(self) -> None:
        self._read: dict[Path, tuple[tuple[int, int], Toolchain | str]] = {}

    def collect(self, folders: list[Path], config: Config) -> Catalog:
        schedules: list[Schedule] = []
        problems: list[str] = []
        toolchains: dict[str, Toolchain] = {}
        for path in toolchain_files(folders):
            loaded = self._load(path)
            if isinstance(loaded, str):
                if "schedule:" in _text(path):
                    problems.append(loaded)  # only files that may hold a schedule are named
                continue
            toolchains.setdefault(loaded.name, loaded)
        for toolchain in toolchains.values():
            schedules.extend(toolchain.schedules)
        for schedule in config_schedules(config, problems):
            target = toolchains.get(schedule.toolchain)
            if target is None:
                problems.append(f"{schedule.source}: no toolchain named {schedule.toolchain!r}")
                continue
            try:
                bind_params(target, schedule.params)
            except ToolrunError as exc:
                problems.append(f"{schedule.source}: {exc.message.splitlines()[0]}")
                continue
            schedules.append(schedule)
        seen: dict[str, Schedule] = {}
        for schedule in schedules:
            if schedule.name in seen:
                problems.append(
                    f"{schedule.source}: a schedule named {schedule.name!r} is also at "
                    f"{seen[schedule.name].source}; this one is not fired"
                )
                continue
            seen[schedule.name] = schedule
        return Catalog(tuple(seen.values()), tuple(problems))

    def _load(self, path: Path) -> Toolchain | str:
        try:
            info = path.stat()
        except OSError as exc:
            return f"{path}: cannot read: {exc.strerror}"
        key = (info.st_mtime_ns, info.st_size)
        kept = self._read.get(path)
        if kept is not None and kept[0] == key:
            return kept[1]
        try:
            loaded: Toolchain | str = load_toolchain(path)
        except ToolrunError as exc:
            loaded = exc.message
        self._read[path] = (key, loaded)
        return loaded


def _text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""


def config_schedules(config: Config, problems: list[str]) -> list[Schedule]:
    """config.toml's ``[[schedules]]``; what is wrong with one goes to ``problems``."""
    found = []
    for index, raw in enumerate(config.tables.get("schedules", [])):
        where = f"{config.path}: schedules[{index}]"
        try:
            found.append(_config_schedule(raw, where))
        except ConfigError as exc:
            problems.append(exc.message)
    return found


def _config_schedule(raw: dict[str, Any], where: str) -> Schedule:
    unknown = sorted(set(raw) - set(CONFIG_KEYS))
    if unknown:
        raise ConfigError(f"{where}: unknown key {unknown[0]!r} (known: {', '.join(CONFIG_KEYS)})")
    name, toolchain = raw.get("name"), raw.get("toolchain")
    if not isinstance(name, str) or not is_tool_name(name):
        raise ConfigError(f"{where}.name must be a simple name (letters, digits, '.', '_', '-')")
    if not isinstance(toolchain, str) or not is_tool_name(toolchain):
        raise ConfigError(f"{where}.toolchain must be a toolchain's name")
    try:
        when = parse_when(raw.get("cron"))
    except ScheduleError as exc:
        raise ConfigError(f"{where}.cron: {exc}") from None
    zone = raw.get("timezone", "")
    if zone:
        try:
            parse_zone(zone)
        except ScheduleError as exc:
            raise ConfigError(f"{where}.timezone: {exc}") from None
    overlap = raw.get("overlap", "skip")
    if overlap not in OVERLAP:
        raise ConfigError(f"{where}.overlap must be one of {', '.join(OVERLAP)}")
    try:
        catch_up = parse_duration(raw["catch_up"]) if "catch_up" in raw else 0.0
    except ValueError as exc:
        raise ConfigError(f"{where}.catch_up must be {exc}") from None
    params = raw.get("params", {})
    if not isinstance(params, dict) or any(isinstance(v, list | dict) for v in params.values()):
        raise ConfigError(f"{where}.params must be a table of scalars")
    return Schedule(name, toolchain, when, zone, dict(params), overlap, catch_up, where)
