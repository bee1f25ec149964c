"""Labels and ``runs_on`` selectors: reading them (file:line:col, --on, the HTTP body), what
matches, and a run this machine cannot take refused before anything runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import StartDaemon, Toolrun, WriteToolchain, write_tool

from toolrun.selectors import (
    Requirement,
    Selector,
    SelectorError,
    machine_labels,
    parse_label,
    parse_labels,
)
from toolrun.toolchains.loader import parse_toolchain_text
from toolrun.toolchains.model import ToolchainError

LABELS = {"os": "linux", "arch": "amd64", "gpu": "yes", "memory": "16384", "zone": "west"}


@pytest.mark.parametrize(
    ("requirement", "matches"),
    [
        (Requirement("os", "eq", ("linux",)), True),
        (Requirement("os", "eq", ("windows",)), False),
        (Requirement("zone", "in", ("east", "west")), True),
        (Requirement("zone", "in", ("east",)), False),
        (Requirement("zone", "not_in", ("east",)), True),
        (Requirement("rack", "not_in", ("a",)), True),  # no label: not in any list
        (Requirement("gpu", "exists"), True),
        (Requirement("tpu", "exists"), False),
        (Requirement("tpu", "not_exists"), True),
        (Requirement("memory", "gt", ("8192",)), True),
        (Requirement("memory", "lt", ("8192",)), False),
        (Requirement("zone", "gt", ("1",)), False),  # not a number: neither more nor less
        (Requirement("rack", "gt", ("1",)), False),
    ],
)
def test_each_operator(requirement: Requirement, matches: bool) -> None:
    assert requirement.matches(LABELS) is matches


def test_a_selector_needs_every_requirement_and_says_which_fail() -> None:
    selector = Selector((Requirement("os", "eq", ("linux",)), Requirement("gpu", "not_exists")))
    assert not selector.matches(LABELS)
    assert [str(r) for r in selector.unmet(LABELS)] == ["gpu not_exists"]
    assert Selector().matches({}) and not Selector()


def test_labels_are_key_equals_value() -> None:
    assert parse_label("os=windows") == ("os", "windows")
    assert parse_labels(["gpu=yes", "gpu=yes", "slots=2"]) == {"gpu": "yes", "slots": "2"}
    for bad, says in [
        ("windows", "is not KEY=VALUE"),
        ("=x", "must be letters"),
        ("my key=x", "must be letters"),
        ("os=a\tb", "control character"),
        ("note=a=b", "holds '='"),
    ]:
        with pytest.raises(SelectorError) as refused:
            parse_label(bad, "--on")
        assert refused.value.message.startswith("--on: ") and says in refused.value.message
    with pytest.raises(SelectorError, match="given twice"):
        parse_labels(["os=linux", "os=windows"])


def test_this_machine_has_its_own_labels() -> None:
    labels = machine_labels()
    assert labels["os"] == "linux" and labels["arch"]


def load(text: str) -> str:
    try:
        parse_toolchain_text(text, name="t", source="t.yaml")
    except ToolchainError as exc:
        return str(exc)
    return ""


def test_runs_on_is_read_from_the_top_and_each_step() -> None:
    toolchain = parse_toolchain_text(
        "runs_on: {os: linux, gpu: true}\n"
        "toolchain:\n"
        "  - a: {cmd: uexp}\n"
        "  - b:\n"
        "      cmd: uexp\n"
        "      runs_on:\n"
        "        - {key: zone, operator: in, values: [east, west]}\n"
        "        - {key: memory, operator: gt, values: 8192}\n"
        "        - {key: tpu, operator: not_exists}\n",
        name="t",
        source="t.yaml",
    )
    assert str(toolchain.runs_on) == "os=linux, gpu=true"
    a, b = toolchain.steps
    assert not a.runs_on
    assert str(b.runs_on) == "zone in east,west, memory gt 8192, tpu not_exists"


@pytest.mark.parametrize(
    ("runs_on", "where"),
    [
        ("linux", "t.yaml:3:16: step 'a': runs_on must be a map of labels"),
        ("[{key: os}]", "t.yaml:3:17: step 'a': runs_on[0].operator: needs an operator: in,"),
        ("[{key: os, operator: like, values: [l]}]", "t.yaml:3:37: step 'a': runs_on[0]."),
        ("[{key: os, operator: in}]", "t.yaml:3:17: step 'a': runs_on[0].values: in needs"),
        ("[{key: m, operator: gt, values: [big]}]", "t.yaml:3:48: step 'a': runs_on[0].values"),
        ("[{key: m, operator: exists, values: [1]}]", "step 'a': runs_on[0].values: exists"),
        ("[{key: m, operator: exists, value: 1}]", "t.yaml:3:44: step 'a': runs_on[0]: unknown"),
        ("{'my os': linux}", "t.yaml:3:17: step 'a': runs_on: label 'my os'"),
        ("{os: [linux]}", "t.yaml:3:21: step 'a': runs_on.os: a label's value"),
    ],
)
def test_a_bad_selector_is_named_with_its_place(runs_on: str, where: str) -> None:
    text = f"toolchain:\n  - a:\n      runs_on: {runs_on}\n      cmd: uexp\n"
    message = load(text)
    assert where in message, message


def test_a_run_this_machine_cannot_take_is_refused_before_anything_runs(
    workdir: Path, toolrun: Toolrun, toolchain: WriteToolchain
) -> None:
    write_tool(workdir / "registry", "hello", "1.0.0")
    toolchain(
        "where",
        "toolchain:\n  - here: {cmd: hello}\n  - there: {cmd: hello, runs_on: {os: windows}}\n",
    )
    refused = toolrun("run", "where", "--plain")
    assert refused.returncode == 2, refused.stderr
    assert "step 'there': runs_on os=windows: this machine is os=linux, arch=" in refused.stderr
    assert "no cluster to send it to" in refused.stderr
    assert json.loads(toolrun("history", "--json").stdout) == []
    ran = toolrun("run", "where", "--plain", "--on", "os=linux")
    assert ran.returncode == 2, "a step's own runs_on stands over --on"
    toolchain("anywhere", "toolchain:\n  - here: {cmd: hello}\n")
    assert toolrun("run", "anywhere", "--plain", "--on", "os=linux").returncode == 0
    elsewhere = toolrun("run", "anywhere", "--plain", "--on", "os=linux", "--on", "gpu=yes")
    assert elsewhere.returncode == 2 and "runs_on gpu=yes" in elsewhere.stderr
    bad = toolrun("run", "anywhere", "--on", "linux")
    assert bad.returncode == 2 and "--on: 'linux' is not KEY=VALUE" in bad.stderr


def test_the_daemon_takes_runs_on_in_the_body(
    daemon: StartDaemon, toolchain: WriteToolchain, toolrun: Toolrun
) -> None:
    import httpx

    toolchain("one", "toolchain:\n  - a: {cmd: probe, args: [echo, hi]}\n")
    server = daemon()
    url = f"{server.url}/api/v1/runs"
    elsewhere = httpx.post(url, json={"toolchain": "one", "runs_on": {"os": "windows"}})
    assert elsewhere.status_code == 409, elsewhere.text
    assert elsewhere.json()["error"] == "unplaceable"
    assert "runs_on os=windows" in elsewhere.json()["message"]
    bad = httpx.post(url, json={"toolchain": "one", "runs_on": [{"key": "os", "operator": "like"}]})
    assert bad.status_code == 400 and bad.json()["field"] == "runs_on[0].operator"
    yaml_body = "toolchain: one\nruns_on:\n  - {key: memory, operator: gt, values: [8]}\n"
    compared = httpx.post(url, content=yaml_body, headers={"content-type": "application/yaml"})
    assert compared.status_code == 409, "a YAML body's number is one for gt: " + compared.text
    assert "runs_on memory gt 8" in compared.json()["message"]
    here = httpx.post(url, json={"toolchain": "one", "runs_on": {"os": "linux"}})
    assert here.status_code == 202, here.text
    remote = toolrun("--remote", server.url, "run", "one", "--plain", "--on", "os=windows")
    assert remote.returncode == 2, "as a local run exits"
    assert "runs_on os=windows: this machine is os=linux" in remote.stderr
    assert (
        toolrun("--remote", server.url, "run", "one", "--plain", "--on", "os=linux").returncode == 0
    )
    assert server.stop() == 0
