"""The shipped examples: the registry's tools and `toolrun run export-job` from a checkout."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from conftest import REPO, run_toolrun


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    """A copy of what a fresh clone holds for running the example."""
    root = tmp_path / "checkout"
    for name in ("registry", "toolchains", "examples"):
        shutil.copytree(REPO / name, root / name, ignore=shutil.ignore_patterns("__pycache__"))
    return root


def test_the_shipped_registry_is_hashed_and_publishable(tmp_path: Path) -> None:
    result = run_toolrun("registry", "build", str(REPO / "registry"), str(tmp_path / "out"))
    assert result.returncode == 0, result.stderr
    index = json.loads((tmp_path / "out" / "index.json").read_text())
    assert set(index["tools"]) == {"game-meta", "uexp", "ping", "linecount"}
    assert index["tools"]["linecount"]["versions"]["1.0.0"]["kind"] == "wasm"
    assert set(index["tools"]["uexp"]["versions"]) == {"0.1.0", "0.2.0"}


def test_export_job_runs_from_a_checkout(checkout: Path, toolrun_home: Path) -> None:
    result = run_toolrun("run", "export-job", cwd=checkout)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "installed uexp 0.1.0 from ./registry" in result.stderr
    assert "items: 6 rows, 5 columns" in result.stdout
    assert "pushed items.json" in result.stdout
    run = json.loads(run_toolrun("history", "--json", cwd=checkout).stdout)[0]
    workspace = toolrun_home / "runs" / run["id"] / "work"
    items = json.loads((workspace / "exp" / "items.json").read_text(encoding="utf-8"))
    assert items[0] == {"id": 1001, "name": "铁剑", "price": 120, "stackable": False, "weight": 3.5}


def test_export_job_params_and_the_newer_exporter(checkout: Path, toolrun_home: Path) -> None:
    result = run_toolrun("run", "export-job", "table=d02", "push=false", cwd=checkout)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "quests: 3 rows" in result.stdout
    assert "push: skipped" in result.stdout
    newer = run_toolrun("exec", "uexp@0.2", "--", "--version", cwd=checkout)
    assert newer.stdout == "uexp 0.2.0\n"
    bad = run_toolrun("run", "export-job", "table=nope", cwd=checkout)
    assert bad.returncode == 1
    assert "no table folder 'nope'" in bad.stdout


def test_the_ping_system_tool_resolves(checkout: Path) -> None:
    assert run_toolrun("tool", "install", "ping", cwd=checkout).returncode == 0
    which = json.loads(run_toolrun("tool", "which", "ping", "--json", cwd=checkout).stdout)
    assert which["kind"] == "system"
    assert which["command"][:3] == ["ping", "-c", "4"]
