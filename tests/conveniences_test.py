"""The small things people expect of a command line: usage errors in toolrun's own form,
whole help, the seed's `toolrun cmd`, `pass_env`, and config's default timeouts."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from conftest import Toolrun, WriteToolchain


@pytest.mark.parametrize(
    ("args", "says", "hint"),
    [
        (["bogus"], "toolrun: error: No such command 'bogus'", "see toolrun --help"),
        (["run"], "toolrun: error: run: Missing argument 'toolchain'.", "see toolrun run --help"),
        (["run", "x", "--nope"], "toolrun: error: run: No such option: --nope", "run --help"),
        (["history", "--limit", "many"], "history: Invalid value for '--limit'", "history --help"),
        (["tool", "install"], "tool install: Missing argument", "see toolrun tool install --help"),
    ],
)
def test_usage_errors_take_toolruns_own_form_and_exit_2(
    toolrun: Toolrun, args: list[str], says: str, hint: str
) -> None:
    result = toolrun(*args)
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("toolrun: error: ") and says in result.stderr, result.stderr
    assert hint in result.stderr
    assert "Usage:" not in result.stderr and "Error:" not in result.stderr
    assert result.stdout == ""


def test_help_lists_each_command_with_its_whole_first_line(toolrun: Toolrun) -> None:
    shown = toolrun("--help", env={"COLUMNS": "200"})
    assert shown.returncode == 0
    listed = shown.stdout.split("Commands:")[1].splitlines()
    assert not [line for line in listed if line.endswith("...")]
    assert "Run a toolchain: live output, a summary, and the run kept in the history." in (
        " ".join(shown.stdout.split())
    )
    bare = toolrun("tool")  # a group with no command: its help, not an error
    assert bare.returncode == 0 and "install" in bare.stdout


def test_cmd_starts_a_toolchain_or_a_tool_the_way_post_cmd_does(
    registry: Path, toolrun: Toolrun, toolchain: WriteToolchain
) -> None:
    toolchain(
        "greeting",
        "toolchain:\n  - say: {cmd: hello, args: ['${{ params.who }}']}\n"
        "params:\n  who: {type: string, default: all}\n",
    )
    run = toolrun("cmd", "toolchain=greeting", "who=ana")
    assert run.returncode == 0, run.stderr
    assert "\nhello 1.1.0 ana\n" in run.stdout
    one = toolrun("cmd", "cmd=hello", "version=1.0", "--", "--flag", "x=y")
    assert one.returncode == 0, one.stderr
    assert one.stdout == "hello 1.0.0 --flag x=y\n"
    runs = json.loads(toolrun("history", "--json").stdout)
    assert [r["toolchain"] for r in runs] == ["hello", "greeting"]
    result = toolrun("result", runs[1]["id"])
    assert result.returncode == 0 and "hello 1.1.0 ana" in result.stdout

    for words, problem in [
        (["who=ana"], "name a toolchain (toolchain=NAME) or a tool (cmd=TOOL)"),
        (["toolchain=greeting", "cmd=hello"], "not both"),
        (["cmd=hello", "who=ana"], "who= is not for a tool: its arguments go after --"),
        (["toolchain=greeting", "version=1"], "version= is a tool's"),
        (["greeting"], "argument 1 ('greeting') is not key=value"),
    ]:
        refused = toolrun("cmd", *words)
        assert refused.returncode == 2, (words, refused.stderr)
        assert problem in refused.stderr, refused.stderr
    missing = toolrun("cmd", "toolchain=nowhere")
    assert missing.returncode == 4


ENV_PRINTER = """\
import os
for name in ("GAME_TABLES", "P4PORT", "P4USER", "SECRET"):
    print(name, os.environ.get(name, "-"))
"""


def test_pass_env_lets_named_variables_of_the_callers_env_reach_local_steps(
    workdir: Path, toolrun: Toolrun, toolchain: WriteToolchain
) -> None:
    from conftest import write_tool

    write_tool(workdir / "registry", "envy", "1.0.0", script=ENV_PRINTER)
    toolchain(
        "job",
        "pass_env: [GAME_TABLES, P4*]\n"
        "env: {GAME_TABLES: /default}\n"
        "toolchain:\n  - show: {cmd: envy}\n",
    )
    given = {"GAME_TABLES": "/mnt/tables", "P4PORT": "ssl:p4:1666", "P4USER": "ana", "SECRET": "x"}
    run = toolrun("run", "job", "--plain", env=given)
    assert run.returncode == 0, run.stderr
    assert "\nGAME_TABLES /mnt/tables\n" in run.stdout  # the caller's, over the default
    assert "\nP4PORT ssl:p4:1666\n" in run.stdout and "\nP4USER ana\n" in run.stdout
    assert "\nSECRET -\n" in run.stdout  # not named: not passed
    unset = toolrun("run", "job", "--plain")
    assert "\nGAME_TABLES /default\n" in unset.stdout

    toolchain("bad", "pass_env: [1BAD]\ntoolchain:\n  - show: {cmd: envy}\n")
    refused = toolrun("run", "bad", "--plain")
    assert refused.returncode == 3
    assert "bad.yaml:1:" in refused.stderr and "pass_env:" in refused.stderr


def test_default_timeouts_from_config_hold_steps_and_runs_that_set_none(
    probe: Path, toolrun: Toolrun, toolchain: WriteToolchain
) -> None:
    toolchain("slow", "toolchain:\n  - nap: {cmd: probe, args: [sleep, '30']}\n")
    toolchain("own", "toolchain:\n  - nap: {cmd: probe, args: [sleep, '1'], timeout: 20s}\n")
    assert toolrun("config", "set", "default_step_timeout", "1s").returncode == 0
    started = time.monotonic()
    run = toolrun("run", "slow", "--plain")
    assert run.returncode == 1, run.stdout + run.stderr  # a step that timed out fails the run
    assert time.monotonic() - started < 15
    assert "nap: timed_out in " in run.stdout and "(step timed out after 1s)" in run.stdout
    assert toolrun("run", "own", "--plain").returncode == 0  # its own timeout wins

    assert toolrun("config", "unset", "default_step_timeout").returncode == 0
    assert toolrun("config", "set", "default_timeout", "1s").returncode == 0
    run = toolrun("run", "slow", "--plain")
    assert run.returncode == 124 and "run timed out" in run.stdout + run.stderr
    assert toolrun("run", "slow", "--plain", "--timeout", "2s").returncode == 124
    bad = toolrun("config", "set", "default_timeout", "soon")
    assert bad.returncode == 2 and "default_timeout" in bad.stderr
