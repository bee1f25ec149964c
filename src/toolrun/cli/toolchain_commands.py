"""``toolrun toolchain list|show|validate``."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from ..errors import ToolrunError
from ..json_views import toolchain_json
from ..runs.event_text import shown_value
from ..toolchains.model import find_toolchain, list_toolchain_files, load_toolchain
from .context import Context
from .errors import ExitCode, report
from .output import info, print_json, print_table


def list_toolchains(ctx: Context, *, as_json: bool = False) -> None:
    seen: set[str] = set()
    rows: list[dict[str, Any]] = []
    for folder in ctx.toolchain_dirs():
        for path in list_toolchain_files(folder):
            if path.stem in seen:
                continue  # an earlier folder's toolchain of the same name wins
            seen.add(path.stem)
            try:
                toolchain = load_toolchain(path)
                rows.append(
                    {
                        "name": path.stem,
                        "path": str(path),
                        "valid": True,
                        "description": toolchain.description,
                        "steps": [s.id for s in toolchain.steps],
                    }
                )
            except ToolrunError as exc:
                rows.append(
                    {
                        "name": path.stem,
                        "path": str(path),
                        "valid": False,
                        "description": exc.message.splitlines()[0],
                        "steps": [],
                    }
                )
    if as_json:
        print_json(rows)
        return
    if not rows:
        searched = ", ".join(str(d) for d in ctx.toolchain_dirs())
        info(f"no toolchains found (searched {searched})")
        return
    print_table(
        ["name", "steps", "description", "path"],
        [
            [
                r["name"],
                str(len(r["steps"])) if r["valid"] else "INVALID",
                r["description"],
                r["path"],
            ]
            for r in rows
        ],
    )


def show(ctx: Context, name: str, *, as_json: bool = False) -> None:
    path = find_toolchain(name, ctx.toolchain_dirs())
    toolchain = load_toolchain(path)
    if as_json:
        print_json(toolchain_json(toolchain))
        return
    info(f"{toolchain.name}: {toolchain.description}".rstrip(": "))
    info(f"  file: {path}")
    if toolchain.timeout:
        info(f"  timeout: {toolchain.timeout:g}s")
    info(f"  max_parallel: {toolchain.max_parallel}")
    if toolchain.params:
        info("params")
        for spec in toolchain.params.values():
            default = (
                "required"
                if spec.required and spec.default is None
                else f"= {shown_value(spec.default)}"
            )
            info(f"  {spec.name} ({spec.type}) {default}  {spec.description}".rstrip())
    info("steps")
    for step in toolchain.steps:
        needs = f" needs {', '.join(step.needs)}" if step.needs else ""
        info(f"  {step.id}: {step.spec_text}{needs}")


def validate(ctx: Context, names: list[str]) -> None:
    """Check toolchains (all found, when none is named); report every problem."""
    dirs = ctx.toolchain_dirs()
    wanted: list[str | Path] = [*names] or [p for d in dirs for p in list_toolchain_files(d)]
    failures = 0
    for item in wanted:
        try:
            path = item if isinstance(item, Path) else find_toolchain(item, dirs)
            toolchain = load_toolchain(path)
        except ToolrunError as exc:
            code = report(exc)  # every problem is reported; the first one's code is kept
            failures = failures or code
            continue
        info(f"{path}: ok ({len(toolchain.steps)} steps)")
        for warning in toolchain.warnings:
            print(f"toolrun: warning: {warning}", file=sys.stderr)
    if failures:
        raise ExitCode(failures)
