"""``toolrun tool ...``: install, list, inspect, upgrade, verify and remove tools."""

from __future__ import annotations

import sys
import time

from ..errors import NotFoundError, StorageError, ToolrunError, UsageError
from ..tools.manifest import current_platform
from ..tools.versions import parse_spec, sorted_versions
from .context import Context
from .errors import ExitCode, report
from .output import info, print_json, print_table, warn
from .progress import installs_watched

# `typing` costs milliseconds at start-up; annotations alone never need it at run time.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def install(ctx: Context, specs: list[str], *, pre: bool = False) -> None:
    """Install each spec; report every failure, then fail with the first one's code."""
    if not specs:
        raise UsageError("name at least one tool to install, e.g. uexp==0.1.0")
    parsed = [parse_spec(text) for text in specs]  # a typo anywhere stops before any install
    ctx.resolver.refresh()  # asked to install: the registries' own answer, not a kept copy
    first_failure = 0
    for spec in parsed:
        try:
            with installs_watched(ctx.installer):
                result = ctx.resolver.resolve_with_result(spec, install=True, pre=pre)
        except ToolrunError as error:
            ctx.resolver.warnings.clear()  # the error already names what was unreachable
            code = report(error)  # every failure is reported; the first one's code is kept
            first_failure = first_failure or code
            continue
        tool = result.tool
        if result.already_installed:
            info(f"{tool.name} {tool.version} is already installed")
        else:
            info(f"installed {tool.name} {tool.version} from {tool.source}")
    _flush_warnings(ctx)
    if first_failure:
        raise ExitCode(first_failure)


def list_tools(ctx: Context, *, available: bool = False, as_json: bool = False) -> None:
    damaged: list[StorageError] = []
    installed = ctx.installer.installed(damaged)
    for error in damaged:  # the others are still listed
        warn(f"{error.message}; {error.hint}")
    if not available:
        if as_json:
            from ..json_views import tool_json  # msgspec: 28 ms, for --json only

            print_json([tool_json(tool) for tool in installed])
        elif not installed:
            info("no tools installed; see `toolrun tool list --available`")
        else:
            print_table(
                ["name", "version", "kind", "installed", "source"],
                [
                    [t.name, t.version, t.manifest.kind, _when(t.installed_at), t.source]
                    for t in installed
                ],
            )
        return
    ctx.resolver.refresh()
    offered = ctx.resolver.available()
    installed_keys = {(t.name, t.version) for t in installed}
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    for name, versions in offered.versions.items():
        for version, registry in versions.items():
            rows[(name, version)] = {"registry": registry.name}
    for tool in installed:
        rows.setdefault((tool.name, tool.version), {"registry": None})
    ordered = [
        (name, version)
        for name in sorted({name for name, _ in rows})
        for version in sorted_versions(v for n, v in rows if n == name)
    ]
    _flush_warnings(ctx)
    if as_json:
        print_json(
            [
                {
                    "name": name,
                    "version": version,
                    "installed": (name, version) in installed_keys,
                    "registry": rows[(name, version)]["registry"],
                }
                for name, version in ordered
            ]
        )
        return
    print_table(
        ["name", "version", "installed", "registry"],
        [
            [
                name,
                version,
                "yes" if (name, version) in installed_keys else "",
                rows[(name, version)]["registry"] or "(installed only)",
            ]
            for name, version in ordered
        ],
    )


def versions(ctx: Context, name: str, *, as_json: bool = False) -> None:
    spec = parse_spec(name)
    if spec.constraint:
        raise UsageError(f"`tool versions` takes a tool name, not a spec: {name!r}")
    installed = set(ctx.installer.versions(name))
    ctx.resolver.refresh()
    offered = ctx.resolver.available([name]).versions.get(name, {})
    everything = sorted_versions({*installed, *offered})
    _flush_warnings(ctx)
    if not everything:
        import difflib

        known = set(ctx.installer.names()) | set(ctx.resolver.available().versions)
        close = difflib.get_close_matches(name, sorted(known), n=3)
        hint = f"did you mean {', '.join(close)}?" if close else None
        raise NotFoundError(f"unknown tool {name!r}", hint=hint)
    latest = spec.pick(everything)
    if as_json:
        print_json(
            [
                {
                    "version": v,
                    "installed": v in installed,
                    "registry": offered[v].name if v in offered else None,
                    "latest": v == latest,
                }
                for v in everything
            ]
        )
        return
    for version in everything:
        marks = []
        if version in installed:
            marks.append("installed")
        if version == latest:
            marks.append("latest")
        suffix = f"  ({', '.join(marks)})" if marks else ""
        info(f"{name} {version}{suffix}")


def which(ctx: Context, spec_text: str, *, as_json: bool = False, pre: bool = False) -> None:
    tool = ctx.resolver.resolve(parse_spec(spec_text), install=False, pre=pre)
    platform = current_platform()
    command = tool.manifest.command_for(platform, tool_dir=tool.path, python=sys.executable)
    import shutil

    program = shutil.which(command[0]) if tool.manifest.is_system else command[0]
    if as_json:
        from ..json_views import tool_json  # msgspec: 28 ms, for --json only

        print_json({**tool_json(tool), "command": command, "program": program})
        return
    info(f"{tool.name} {tool.version}")
    info(f"  folder:  {tool.path}")
    info(f"  command: {' '.join(_quote(part) for part in command)}")
    if tool.manifest.is_system:
        info(f"  program: {program or f'{command[0]} (not found on PATH)'}")


def remove(ctx: Context, spec_text: str, *, remove_all: bool = False) -> None:
    spec = parse_spec(spec_text)
    installed = ctx.installer.versions(spec.name)
    matching = [v for v in installed if spec.allows(v, pre=True)]
    if not matching:
        have = f" (installed: {', '.join(installed)})" if installed else ""
        raise NotFoundError(f"no installed version of {spec.name} matches {spec_text!r}{have}")
    if len(matching) > 1 and not remove_all:
        raise UsageError(
            f"{spec_text!r} matches {len(matching)} installed versions ({', '.join(matching)})",
            hint="name one version (NAME==X.Y.Z) or pass --all",
        )
    for version in matching:
        ctx.installer.remove(spec.name, version)
        info(f"removed {spec.name} {version}")


def upgrade(ctx: Context, names: list[str], *, pre: bool = False) -> None:
    """Install the newest version of each tool (all installed ones by default); keep old ones."""
    targets = names or ctx.installer.names()
    if not targets:
        info("no tools installed; nothing to upgrade")
        return
    ctx.resolver.refresh()
    first_failure = 0
    for name in targets:
        spec = parse_spec(name)
        before = sorted_versions(ctx.installer.versions(spec.name))
        try:
            with installs_watched(ctx.installer):
                result = ctx.resolver.resolve_with_result(spec, install=True, pre=pre)
        except ToolrunError as error:
            code = report(error)  # every failure is reported; the first one's code is kept
            first_failure = first_failure or code
            continue
        tool = result.tool
        if result.already_installed:
            info(f"{tool.name} {tool.version} is the newest matching version")
        else:
            previous = before[-1] if before else "(none)"
            info(f"{tool.name} {previous} -> {tool.version}")
    _flush_warnings(ctx)
    if first_failure:
        raise ExitCode(first_failure)


def verify(ctx: Context, specs: list[str]) -> None:
    damaged: list[StorageError] = []
    tools = ctx.installer.installed(damaged)
    if specs:
        parsed = [parse_spec(text) for text in specs]
        tools = [t for t in tools if any(s.name == t.name and s.allows(t.version) for s in parsed)]
        if not tools:
            raise NotFoundError(f"no installed tool matches {' '.join(specs)}")
    bad = 0
    for tool in tools:
        problems = ctx.installer.verify(tool)
        if problems:
            bad += 1
            print(f"{tool.name} {tool.version}: CHANGED", file=sys.stderr)
            for problem in problems:
                print(f"  {problem}", file=sys.stderr)
        else:
            info(f"{tool.name} {tool.version}: ok")
    for error in damaged:
        bad += 1
        print(f"{error.message}; {error.hint}", file=sys.stderr)
    if bad:
        print(
            f"toolrun: error: {bad} installed tool(s) changed since install; "
            "reinstall with `toolrun tool remove` then `toolrun tool install`",
            file=sys.stderr,
        )
        raise ExitCode(5)


def _when(timestamp: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(timestamp))


def _quote(part: str) -> str:
    return f'"{part}"' if not part or any(c.isspace() for c in part) else part


def _flush_warnings(ctx: Context) -> None:
    if "resolver" in ctx.__dict__:
        for message in ctx.resolver.warnings:
            warn(f"{message}; carrying on with installed tools and other registries")
        ctx.resolver.warnings.clear()
