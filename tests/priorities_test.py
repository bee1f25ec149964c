"""A run's priority: read from a toolchain (file:line:col), ``--priority`` and the HTTP body,
recorded with the run, kept by a rerun, and passed on by ``--remote``. (The daemon's queue
ordering by it: daemon_api_test; a cluster's: cluster_test.)"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import StartDaemon, Toolrun, WriteToolchain, run_toolrun, write_tool

from toolrun.priorities import PriorityError, parse_priority, priority_name
from toolrun.toolchains.loader import parse_toolchain_text
from toolrun.toolchains.model import ToolchainError


@pytest.mark.parametrize(
    ("value", "number"),
    [
        ("high", 10),
        ("normal", 0),
        ("low", -10),
        (0, 0),
        (-1000, -1000),
        (1000, 1000),
        (-844.0, -844),
    ],
)
def test_names_and_numbers(value: object, number: int) -> None:
    assert parse_priority(value) == number


@pytest.mark.parametrize("value", ["urgent", "High", "5", 1001, -1001, 2.5, True, None, [1]])
def test_anything_else_is_refused_saying_what_is_taken(value: object) -> None:
    with pytest.raises(PriorityError) as refused:
        parse_priority(value)
    assert refused.value.message.startswith("priority must be high, normal, low or a whole")


def test_a_command_line_gives_numbers_as_text() -> None:
    assert parse_priority("-5", text=True) == -5
    with pytest.raises(PriorityError):
        parse_priority("5.5", text=True)
    assert [priority_name(n) for n in (10, 0, -10, 7)] == ["high", "normal", "low", "7"]


def test_a_bad_priority_in_a_toolchain_is_named_with_its_place() -> None:
    text = "description: x\npriority: soon\ntoolchain:\n  - a: {cmd: uexp}\n"
    with pytest.raises(ToolchainError) as refused:
        parse_toolchain_text(text, name="t", source="t.yaml")
    assert "t.yaml:2:11: priority must be high, normal, low" in str(refused.value)
    good = parse_toolchain_text(text.replace("soon", "low"), name="t", source="t.yaml")
    assert good.priority == -10


def test_a_run_records_its_priority_and_a_rerun_keeps_it(
    workdir: Path, toolrun: Toolrun, toolchain: WriteToolchain
) -> None:
    write_tool(workdir / "registry", "hello", "1.0.0")
    toolchain("greet", "priority: high\ntoolchain:\n  - a: {cmd: hello}\n")
    assert toolrun("run", "greet", "--plain").returncode == 0
    assert toolrun("run", "greet", "--plain", "--priority", "-3").returncode == 0
    newest, oldest = json.loads(toolrun("history", "--json").stdout)
    assert (oldest["priority"], newest["priority"]) == (10, -3)
    assert "priority   high" in toolrun("show", oldest["id"]).stdout
    assert toolrun("rerun", newest["id"], "--plain").returncode == 0
    assert json.loads(toolrun("history", "--json").stdout)[0]["priority"] == -3

    bad = toolrun("run", "greet", "--plain", "--priority", "asap")
    assert bad.returncode == 2
    assert "--priority must be high, normal, low or a whole number" in bad.stderr
    assert len(json.loads(toolrun("history", "--json").stdout)) == 3, "nothing was recorded"


def test_remote_passes_the_priority_to_the_daemon(
    daemon: StartDaemon, toolchain: WriteToolchain, tmp_path: Path
) -> None:
    toolchain("one", "toolchain:\n  - a: {cmd: probe, args: [echo, hi]}\n")
    server = daemon()
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "home").mkdir(parents=True)
    env = {"TOOLRUN_HOME": str(elsewhere / "home")}
    ran = run_toolrun(
        "--remote", server.url, "run", "one", "--plain", "--priority", "low", cwd=elsewhere, env=env
    )
    assert ran.returncode == 0, ran.stderr
    shown = json.loads(run_toolrun("history", "--json").stdout)  # the daemon's own store
    assert [run["priority"] for run in shown] == [-10]
