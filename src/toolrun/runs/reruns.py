"""What running a past run again means: its toolchain text, params and tool versions, and
with ``from_failed`` its succeeded steps kept and its workspace copied. Used by ``toolrun
rerun``, the TUI's ``r`` and the daemon's ``POST /api/v1/runs/{id}/rerun``."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

from ..errors import NotFoundError, UsageError
from ..history.store import Store
from ..records import replace
from ..toolchains.model import Toolchain, find_toolchain, parse_toolchain
from .engine import RunOptions


class NothingToRerun(UsageError):
    """``--from-failed`` of a run that did not fail (409 over HTTP)."""


def plan_rerun(
    store: Store, run_id: str, *, from_failed: bool, toolchain_dirs: list[Path]
) -> tuple[Toolchain, dict[str, Any], RunOptions]:
    """The toolchain, params and options (without origin or requester) of a rerun."""
    old = store.require_run(run_id)
    if old.is_active:
        raise UsageError(f"run {run_id} is still {old.status}")
    run_dir = store.run_dir(run_id)
    text = (run_dir / "toolchain.yaml").read_text(encoding="utf-8")
    source = f"{run_dir / 'toolchain.yaml'} (run {run_id})"
    toolchain = parse_toolchain(text, name=old.toolchain, source=source)
    # A rerun keeps `toolchain.dir` pointing where the original file was, if it still is.
    with contextlib.suppress(NotFoundError):
        toolchain = replace(toolchain, path=find_toolchain(toolchain.name, toolchain_dirs))
    steps = store.steps(run_id)
    pinned = {s.step_id: s.version for s in steps if s.version}
    carried = {}
    if from_failed:
        carried = {s.step_id: s for s in steps if s.status == "succeeded"}
        if len(carried) == len(steps):
            raise NothingToRerun(f"every step of run {run_id} succeeded; nothing to run again")
    options = RunOptions(
        pinned=pinned,
        carried=carried,
        workspace_from=run_id if from_failed else None,
        rerun_of=run_id,
        priority=old.priority,
    )
    return toolchain, old.params, options
