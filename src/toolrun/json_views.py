"""The JSON shapes of runs, tools and toolchains: one definition for ``--json`` and HTTP."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .history.store import RunRecord, StepRecord
    from .toolchains.model import Toolchain
    from .tools.installer import InstalledTool


def run_json(run: RunRecord, steps: list[StepRecord] | None = None) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": run.id,
        "toolchain": run.toolchain,
        "status": run.status,
        "origin": run.origin,
        "requester": run.requester,
        "params": run.params,
        "created_at": run.created_at,
        "started_at": run.started_at,
        "finished_at": run.finished_at,
        "duration": run.duration,
        "exit_code": run.exit_code,
        "error": run.error,
        "rerun_of": run.rerun_of,
        "toolchain_sha256": run.toolchain_sha256,
        "size_bytes": run.size_bytes,
    }
    if steps is not None:
        data["steps"] = [
            {
                "id": s.step_id,
                "tool": s.tool,
                "spec": s.spec,
                "version": s.version,
                "sha256": s.sha256,
                "status": s.status,
                "attempts": s.attempts,
                "exit_code": s.exit_code,
                "started_at": s.started_at,
                "finished_at": s.finished_at,
                "duration": s.duration,
                "outputs": s.outputs,
                "error": s.error,
                "allowed_failure": s.allowed_failure,
            }
            for s in steps
        ]
    return data


def tool_json(tool: InstalledTool, *, private: bool = True) -> dict[str, Any]:
    """``private``: with where it is and where it came from (this machine's paths)."""
    data: dict[str, Any] = {
        "name": tool.name,
        "version": tool.version,
        "kind": tool.manifest.kind,
        "description": tool.manifest.description,
        "installed_at": tool.installed_at,
        "archive_sha256": tool.archive_sha256,
    }
    if private:
        data.update(path=str(tool.path), source=tool.source)
    return data


def toolchain_json(toolchain: Toolchain) -> dict[str, object]:
    return {
        "name": toolchain.name,
        "description": toolchain.description,
        "path": str(toolchain.path) if toolchain.path else None,
        "sha256": toolchain.sha256,
        "timeout": toolchain.timeout,
        "max_parallel": toolchain.max_parallel,
        "params": {
            p.name: {
                "type": p.type,
                "default": p.default,
                "required": p.required,
                "description": p.description,
                "choices": list(p.choices),
            }
            for p in toolchain.params.values()
        },
        "steps": [
            {
                "id": s.id,
                "cmd": s.cmd,
                "version": s.version or "latest",
                "needs": list(s.needs),
                "timeout": s.timeout,
                "retries": s.retries.max,
                "continue_on_error": s.continue_on_error,
            }
            for s in toolchain.steps
        ],
    }


def run_from_json(data: dict[str, Any]) -> RunRecord:
    """The record ``run_json`` describes (as a daemon sends it to ``--remote``)."""
    from .history.store import RunRecord

    return RunRecord(
        id=data["id"],
        toolchain=data["toolchain"],
        status=data["status"],
        origin=data.get("origin", ""),
        requester=data.get("requester", ""),
        params=data.get("params") or {},
        created_at=data["created_at"],
        started_at=data.get("started_at"),
        finished_at=data.get("finished_at"),
        exit_code=data.get("exit_code"),
        error=data.get("error"),
        toolchain_sha256=data.get("toolchain_sha256"),
        rerun_of=data.get("rerun_of"),
        size_bytes=data.get("size_bytes") or 0,
    )


def steps_from_json(data: dict[str, Any]) -> list[StepRecord]:
    from .history.store import StepRecord

    return [
        StepRecord(
            run_id=data["id"],
            step_id=step["id"],
            position=position,
            tool=step.get("tool", ""),
            spec=step.get("spec", ""),
            version=step.get("version"),
            sha256=step.get("sha256"),
            status=step.get("status", "pending"),
            attempts=step.get("attempts", 0),
            exit_code=step.get("exit_code"),
            started_at=step.get("started_at"),
            finished_at=step.get("finished_at"),
            outputs=step.get("outputs") or {},
            error=step.get("error"),
            allowed_failure=bool(step.get("allowed_failure")),
        )
        for position, step in enumerate(data.get("steps", []))
    ]
