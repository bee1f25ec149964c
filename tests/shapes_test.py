"""The shapes declared once (json_views, daemon/answers, daemon/requests) are what the OpenAPI
document says, what the checks take, and what ``--remote`` reads back."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any, get_args

import jsonschema
import msgspec
import pytest
from conftest import Toolrun, WriteToolchain, write_tool

from toolrun.daemon.bodies import BadRequest
from toolrun.daemon.openapi import document
from toolrun.daemon.requests import ToolchainRequest, ToolRequest, run_request
from toolrun.errors import ConfigError, UsageError
from toolrun.history.store import RUN_STATES, STEP_STATES
from toolrun.json_views import RunStatus, StepStatus, read_run, run_from_json, steps_from_json
from toolrun.policy import check_relative_arg
from toolrun.runs.event_shapes import SHAPES as EVENTS
from toolrun.runs.event_shapes import Event, RunFinished, RunStarted
from toolrun.tools.publish import rehash

# Bodies the checks refuse and the document's RunRequest schema refuses too.
BAD: dict[str, dict[str, Any]] = {
    "nothing named": {},
    "an unknown field": {"cmd": "uexp", "argz": []},
    "cmd a number": {"cmd": 5},
    "cmd with a slash": {"cmd": "../uexp"},
    "cmd too long": {"cmd": "a" * 101},
    "version a number": {"cmd": "uexp", "version": 0.1},
    "version no constraint": {"cmd": "uexp", "version": "one"},
    "an arg a number": {"cmd": "uexp", "args": [1]},
    "an arg with a NUL": {"cmd": "uexp", "args": ["a\x00b"]},
    "args a mapping for a tool": {"cmd": "uexp", "args": {"a": "b"}},
    "params for a tool": {"cmd": "uexp", "params": {"a": "b"}},
    "env a string": {"cmd": "uexp", "env": "-FOO:bar"},
    "env a bad name": {"cmd": "uexp", "env": {"MY-VAR": "x"}},
    "env a number value": {"cmd": "uexp", "env": {"FOO": 1}},
    "env a bad item": {"cmd": "uexp", "env": ["FOO"]},
    "timeout negative": {"cmd": "uexp", "timeout": -1},
    "timeout a bad unit": {"cmd": "uexp", "timeout": "5x"},
    "a toolchain and a cmd": {"toolchain": "export-job", "cmd": "uexp"},
    "a toolchain's args a list": {"toolchain": "export-job", "args": ["a"]},
    "params and args": {"toolchain": "export-job", "params": {}, "args": {}},
    "params a list": {"toolchain": "export-job", "params": ["a"]},
    "a toolchain name with a space": {"toolchain": "export job"},
    "runs_on a string": {"cmd": "uexp", "runs_on": "linux"},
    "runs_on an unknown operator": {
        "toolchain": "export-job",
        "runs_on": [{"key": "os", "operator": "like"}],
    },
    "runs_on a label with a space": {"cmd": "uexp", "runs_on": {"my os": "linux"}},
    "runs_on gt a word": {
        "cmd": "uexp",
        "runs_on": [{"key": "m", "operator": "gt", "values": "x"}],
    },
    "runs_on in without values": {"cmd": "uexp", "runs_on": [{"key": "m", "operator": "in"}]},
    "priority an unknown name": {"cmd": "uexp", "priority": "urgent"},
    "priority out of range": {"toolchain": "export-job", "priority": 1001},
    "priority a fraction": {"cmd": "uexp", "priority": 1.5},
    "priority a number as text": {"cmd": "uexp", "priority": "5"},
    "priority true": {"cmd": "uexp", "priority": True},
}
GOOD: dict[str, dict[str, Any]] = {
    "a tool": {"cmd": "uexp"},
    "everything": {
        "cmd": "uexp",
        "version": "^0.1",
        "args": ["-i", "tables/d01", "--flag=x"],
        "env": {"STAGE": "test"},
        "timeout": "1h30m",
    },
    "one arg as text": {"cmd": "uexp", "args": "d01"},
    "the seed's env list": {"cmd": "uexp", "env": [{"A": "1"}, "B=2", "C:3"]},
    "seconds": {"cmd": "uexp", "timeout": 30},
    "a toolchain": {"toolchain": "export-job", "params": {"table": "d02", "push": False}},
    "the seed's args": {"toolchain": "export-job", "args": {"table": "d02"}},
    "where to run": {"toolchain": "export-job", "runs_on": {"os": "linux"}},
    "requirements": {"cmd": "uexp", "runs_on": [{"key": "gpu", "operator": "exists"}]},
    "high priority": {"toolchain": "export-job", "priority": "high"},
    "a priority number": {"cmd": "uexp", "priority": -1000},
}


def schema_of(name: str) -> jsonschema.Draft202012Validator:
    components = document()["components"]
    schema = {"$ref": f"#/components/schemas/{name}", "components": components}
    return jsonschema.Draft202012Validator(schema)


@pytest.mark.parametrize("case", sorted(BAD))
def test_a_bad_body_is_refused_by_the_checks_and_the_document(case: str) -> None:
    with pytest.raises(BadRequest):
        run_request(BAD[case])
    assert not schema_of("RunRequest").is_valid(BAD[case]), f"the document takes {case}"


@pytest.mark.parametrize("arg", ["/etc/passwd", "../secret", "--out=C:/x", "file:x"])
def test_the_argument_rule_is_the_documents(arg: str) -> None:
    """The daemon applies it when it starts the tool (a 400 naming the argument)."""
    with pytest.raises(UsageError):
        check_relative_arg(arg)
    assert not schema_of("RunRequest").is_valid({"cmd": "uexp", "args": [arg]})
    assert schema_of("RunRequest").is_valid({"cmd": "uexp", "args": ["./x", "a=b"]})


@pytest.mark.parametrize("case", sorted(GOOD))
def test_a_good_body_is_taken_by_both(case: str) -> None:
    run_request(GOOD[case])
    assert schema_of("RunRequest").is_valid(GOOD[case])


def test_the_checks_know_the_fields_the_shapes_declare() -> None:
    with pytest.raises(BadRequest) as refused:
        run_request({"cmd": "uexp", "nope": 1})
    fields = {*ToolRequest.__struct_encode_fields__, *ToolchainRequest.__struct_encode_fields__}
    assert refused.value.message.endswith("known: " + ", ".join(sorted(fields)))


def test_the_states_are_the_stores() -> None:
    assert get_args(RunStatus) == RUN_STATES
    assert get_args(StepStatus) == STEP_STATES


RUN: dict[str, Any] = {
    "id": "20250208123359-1",
    "toolchain": "export-job",
    "status": "succeeded",
    "origin": "cli",
    "requester": "ana",
    "params": {"table": "d01"},
    "created_at": 1.0,
    "started_at": 1.5,
    "finished_at": 2.5,
    "duration": 1.0,
    "exit_code": 0,
    "error": None,
    "rerun_of": None,
    "toolchain_sha256": None,
    "size_bytes": 10,
    "priority": 10,
    "lock_sha256": "ab" * 32,
    "steps": [
        {
            "id": "export",
            "tool": "uexp",
            "spec": "uexp@0.1",
            "version": "0.1.0",
            "sha256": None,
            "status": "succeeded",
            "attempts": 1,
            "exit_code": 0,
            "started_at": 1.5,
            "finished_at": 2.5,
            "duration": 1.0,
            "outputs": {"out": "x"},
            "error": None,
            "allowed_failure": False,
            "worker": "build-7",
            "workers": ["build-3", "build-7"],
        }
    ],
    "links": {"self": "/api/v1/runs/20250208123359-1"},
}


def test_a_run_read_back_is_the_run_sent() -> None:
    assert schema_of("Run").is_valid(RUN)
    assert msgspec.to_builtins(read_run(RUN)) == RUN
    record = run_from_json(RUN)
    assert (record.id, record.status, record.params, record.size_bytes) == (
        RUN["id"],
        "succeeded",
        {"table": "d01"},
        10,
    )
    [step] = steps_from_json(RUN)
    assert (step.run_id, step.step_id, step.outputs) == (RUN["id"], "export", {"out": "x"})


@pytest.mark.parametrize(
    ("change", "where"),
    [
        ({"status": "exploded"}, "$.status"),
        ({"created_at": "yesterday"}, "$.created_at"),
        ({"id": "last"}, "$.id"),
    ],
)
def test_a_damaged_run_from_a_daemon_is_a_clear_error(change: dict[str, Any], where: str) -> None:
    damaged = {**RUN, **change}
    with pytest.raises(ConfigError) as refused:
        run_from_json(damaged)
    assert where in refused.value.message
    assert not schema_of("Run").is_valid(damaged)


def test_the_document_is_json() -> None:
    text = json.dumps(document())
    assert "#/components/schemas/RunRequest" in text


EVERY_KIND = """\
toolchain:
  - noisy:
      cmd: noisy
      args: ["2000"]
  - flaky:
      cmd: noisy
      args: ["fail"]
      retries: {max: 1, delay: 0.1}
      continue_on_error: true
      needs: []
  - skipped:
      cmd: noisy
      if: "false"
      needs: []
  - unstartable:
      cmd: gone
      needs: []
"""
NOISY = """\
import sys
if sys.argv[1:] == ["fail"]:
    print("oops", file=sys.stderr)
    sys.exit(3)
for index in range(int(sys.argv[1])):
    print(f"line {index}")
"""


def test_every_event_a_run_writes_is_its_declared_shape(
    workdir: Path, toolrun_home: Path, toolrun: Toolrun, toolchain: WriteToolchain
) -> None:
    """Decoded strictly: a field the engine adds and the shape lacks fails here."""
    write_tool(workdir / "registry", "noisy", "1.0.0", script=NOISY)
    gone = write_tool(workdir / "registry", "gone", "1.0.0")
    manifest = (gone / "tool.toml").read_text(encoding="utf-8")
    (gone / "tool.toml").write_text(
        manifest.replace('"{python}", "{tool_dir}/main.py"', '"{tool_dir}/no-such-program"'),
        encoding="utf-8",
    )
    rehash(gone)
    toolchain("every", EVERY_KIND)
    assert toolrun("config", "set", "output_cap", "4KB").returncode == 0
    done = toolrun("run", "every", "--json")
    assert done.returncode == 1, done.stderr
    decoder = msgspec.json.Decoder(Event)
    live = [decoder.decode(line) for line in done.stdout.splitlines() if line.strip()]
    run_id = next(event.run for event in live if isinstance(event, RunStarted))
    stored = [
        decoder.decode(line)
        for line in (toolrun_home / "runs" / run_id / "events.jsonl").read_bytes().splitlines()
    ]
    # A run that is paused and resumed writes the last two: pause_test.py decodes those.
    paused = {"RunPaused", "RunResumed"}
    assert {type(event).__name__ for event in stored} == {s.__name__ for s in EVENTS} - paused
    assert [event.seq for event in stored] == list(range(1, len(stored) + 1))
    assert len(live) == len(stored)


def test_a_recovered_ending_is_its_declared_shape() -> None:
    from toolrun.history.endings import run_finished_data

    record = run_from_json(RUN)
    data = {"seq": 9, "t": 1.0, "kind": "run_finished", **run_finished_data(record)}
    ending = msgspec.convert({**data, "recovered": True}, Event)
    assert isinstance(ending, RunFinished) and ending.recovered is True


@pytest.mark.parametrize("command", [["tool", "list"], ["history"], ["--version"]])
def test_the_fast_commands_leave_msgspec_alone(workdir: Path, command: list[str]) -> None:
    """Its import costs 28-46 ms where typer is not loaded; only --json and the daemon pay."""
    probe = (
        "import sys\n"
        "from toolrun.__main__ import main\n"
        f"code = main({command!r})\n"
        "print('MSGSPEC', 'msgspec' in sys.modules, file=sys.stderr)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=workdir, capture_output=True, text=True
    )
    assert "MSGSPEC False" in result.stderr, result.stderr
