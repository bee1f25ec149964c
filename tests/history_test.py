"""The history as a user browses it: filters, pages, logs, results, reruns, pruning."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from conftest import Toolrun, WriteToolchain, write_tool


def history(toolrun: Toolrun, *args: str) -> list[dict[str, Any]]:
    result = toolrun("history", "--json", *args)
    assert result.returncode == 0, result.stderr
    runs: list[dict[str, Any]] = json.loads(result.stdout)
    return runs


def test_filters_and_pages(probe: Path, toolchain: WriteToolchain, toolrun: Toolrun) -> None:
    toolchain("ok", "toolchain:\n  - a: {cmd: probe, args: [echo, fine]}\n")
    toolchain("bad", "toolchain:\n  - a: {cmd: probe, args: [fail, '2']}\n")
    for name in ("ok", "bad", "ok", "ok"):
        toolrun("run", name)
    assert [r["toolchain"] for r in history(toolrun)] == ["ok", "ok", "bad", "ok"]
    assert [r["status"] for r in history(toolrun, "--status", "failed")] == ["failed"]
    assert len(history(toolrun, "--toolchain", "ok")) == 3
    first, second = (
        history(toolrun, "--limit", "2"),
        history(toolrun, "--limit", "2", "--page", "2"),
    )
    assert len(first) == len(second) == 2 and not {r["id"] for r in first} & {
        r["id"] for r in second
    }
    assert history(toolrun, "--since", "1h") and not history(toolrun, "--until", "2001-01-01")
    assert history(toolrun, "--since", "2099-01-01T00:00:00+00:00") == []
    bad = toolrun("history", "--status", "exploded")
    assert bad.returncode == 2 and "succeeded" in bad.stderr
    assert toolrun("history", "--since", "yesterdayish").returncode == 2
    table = toolrun("history").stdout
    assert table.splitlines()[0].split() == [
        "ID",
        "TOOLCHAIN",
        "STATUS",
        "STARTED",
        "DURATION",
        "ORIGIN",
        "REQUESTER",
    ]


def test_show_logs_and_result(
    probe: Path, toolchain: WriteToolchain, toolrun: Toolrun, toolrun_home: Path
) -> None:
    toolchain(
        "two",
        "toolchain:\n"
        "  - one: {cmd: probe, args: [echo, first]}\n"
        "  - two: {cmd: probe, args: [stderr, oops]}\n",
    )
    assert toolrun("config", "set", "log_format", "text").returncode == 0
    assert toolrun("run", "two").returncode == 0
    run_id = history(toolrun)[0]["id"]
    shown = toolrun("show", run_id).stdout
    assert "probe" in shown and "2.0.0" in shown and "succeeded" in shown
    logs = toolrun("logs", run_id).stdout
    assert "one | first" in logs and "two ! oops" in logs and "✓ two: succeeded" in logs
    assert "first" in (one := toolrun("logs", run_id, "--step", "one").stdout) and "oops" not in one
    as_json = [
        json.loads(line) for line in toolrun("logs", run_id, "--format", "json").stdout.splitlines()
    ]
    assert [e["seq"] for e in as_json] == list(range(1, len(as_json) + 1))
    assert toolrun("logs", run_id, "--step", "nope").returncode == 2
    result = toolrun("result", run_id)
    assert (result.returncode, result.stdout) == (0, "one | first\ntwo ! oops\n")
    output_log = (toolrun_home / "runs" / run_id / "output.log").read_text()
    assert output_log == "[one] first\n[two] oops\n"
    assert toolrun("result", "20990101000000-1").returncode == 4
    not_an_id = toolrun("show", "../../etc/passwd")
    assert not_an_id.returncode == 4 and "is not a run id" in not_an_id.stderr


def test_logs_follow_a_live_run_from_another_terminal(
    probe: Path, toolchain: WriteToolchain, workdir: Path, toolrun: Toolrun, tmp_path: Path
) -> None:
    toolchain(
        "slow",
        "toolchain:\n"
        "  - a: {cmd: probe, args: [echo, before]}\n"
        "  - b: {cmd: probe, args: [sleep, '1.5']}\n"
        "  - c: {cmd: probe, args: [echo, after]}\n",
    )
    runner = subprocess.Popen(
        [sys.executable, "-m", "toolrun", "run", "slow"],
        cwd=workdir,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 20
    while not history(toolrun) or history(toolrun)[0]["status"] == "queued":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    run_id = history(toolrun)[0]["id"]
    followed = toolrun("logs", "-f", run_id, "--format", "json")
    runner.wait(timeout=30)
    events = [json.loads(line) for line in followed.stdout.splitlines()]
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1)), "no gap, no duplicate"
    assert events[-1]["kind"] == "run_finished"
    lines = [line for e in events if e["kind"] == "output" for line in e["lines"]]
    assert lines == ["before", "sleeping", "woke", "after"]


def test_result_of_a_live_run_is_75(
    probe: Path, toolchain: WriteToolchain, workdir: Path, toolrun: Toolrun
) -> None:
    toolchain("slow", "toolchain:\n  - a: {cmd: probe, args: [sleep, '3']}\n")
    runner = subprocess.Popen(
        [sys.executable, "-m", "toolrun", "run", "slow"],
        cwd=workdir,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 20
        while not history(toolrun):
            assert time.monotonic() < deadline
            time.sleep(0.05)
        result = toolrun("result", history(toolrun)[0]["id"])
        assert result.returncode == 75 and "still" in result.stderr
    finally:
        runner.kill()
        runner.wait()


def test_rerun_uses_the_same_versions_and_toolchain_text(
    probe: Path, toolchain: WriteToolchain, toolrun: Toolrun, workdir: Path
) -> None:
    path = toolchain("pinned", "toolchain:\n  - a: {cmd: probe, args: [echo, original]}\n")
    assert toolrun("run", "pinned").returncode == 0
    first = history(toolrun)[0]["id"]
    write_tool(workdir / "registry", "probe", "3.0.0", script="print('new version')\n")
    path.write_text("toolchain:\n  - a: {cmd: probe, args: [echo, edited]}\n")
    again = toolrun("rerun", first)
    assert again.returncode == 0, again.stderr
    assert "original" in again.stdout and "new version" not in again.stdout
    rerun = json.loads(toolrun("show", history(toolrun)[0]["id"], "--json").stdout)
    assert rerun["rerun_of"] == first and rerun["steps"][0]["version"] == "2.0.0"


def test_rerun_from_failed_keeps_what_succeeded(
    probe: Path, toolchain: WriteToolchain, toolrun: Toolrun, tmp_path: Path
) -> None:
    flag = tmp_path / "counter"
    toolchain(
        "mend",
        f"""
toolchain:
  - make: {{cmd: probe, args: [write, made.txt, built]}}
  - out: {{cmd: probe, args: [output, "K=v"]}}
  - check: {{cmd: probe, args: [flaky, "{flag}", "2"]}}
  - use: {{cmd: probe, args: [echo, "${{{{ steps.out.outputs.K }}}}"]}}
  - read: {{cmd: probe, args: [read, made.txt]}}
""",
    )
    assert toolrun("run", "mend").returncode == 1
    failed = history(toolrun)[0]["id"]
    result = toolrun("rerun", "--from-failed", failed)
    assert result.returncode == 0, result.stdout + result.stderr
    steps = json.loads(toolrun("show", history(toolrun)[0]["id"], "--json").stdout)["steps"]
    assert [s["attempts"] for s in steps] == [0, 0, 1, 1, 1]  # make and out were carried over
    assert "use   | v" in result.stdout and "read  | built" in result.stdout
    nothing = toolrun("rerun", "--from-failed", history(toolrun)[0]["id"])
    assert nothing.returncode == 2


def test_delete_and_prune(
    probe: Path, toolchain: WriteToolchain, toolrun: Toolrun, toolrun_home: Path
) -> None:
    toolchain("ok", "toolchain:\n  - a: {cmd: probe, args: [lines, '2000']}\n")
    for _ in range(5):
        assert toolrun("run", "ok").returncode == 0
    ids = [r["id"] for r in history(toolrun)]
    assert toolrun("history", "delete", ids[-1]).returncode == 0
    assert not (toolrun_home / "runs" / ids[-1]).exists()
    assert (
        toolrun("history", "prune", "--keep", "3", "--dry-run").stdout == "would delete 1 run(s)\n"
    )
    assert toolrun("history", "prune", "--keep", "3").returncode == 0
    assert [r["id"] for r in history(toolrun)] == ids[:3]
    size = history(toolrun)[0]["size_bytes"]
    assert size > 40_000
    assert toolrun("history", "prune", "--max-size", str(size + 10)).returncode == 0
    assert [r["id"] for r in history(toolrun)] == ids[:1]
    assert toolrun("history", "prune", "--older-than", "0.01s").returncode == 0
    assert history(toolrun) == []
    assert toolrun("history", "prune").returncode == 2
    assert toolrun("history", "prune", "--max-size", "lots").returncode == 2


def test_refused_before_anything_runs(
    probe: Path, toolchain: WriteToolchain, toolrun: Toolrun
) -> None:
    toolchain(
        "broken",
        "params:\n  n: {type: integer, required: true}\n"
        "toolchain:\n  - a: {cmd: probe}\n  - b: {cmd: nosuchtool}\n"
        "  - c: {cmd: probe, version: '9'}\n",
    )
    unknown = toolrun("run", "broken", "n=1")
    assert unknown.returncode == 4
    assert "step 'b' (nosuchtool): unknown tool 'nosuchtool'" in unknown.stderr
    assert "step 'c' (probe@9): no version of probe matches '9'" in unknown.stderr
    missing = toolrun("run", "broken")
    assert missing.returncode == 2 and "missing required parameter 'n'" in missing.stderr
    assert toolrun("run", "broken", "n=1", "m=2").returncode == 2
    assert toolrun("run", "broken", "n").returncode == 2
    assert history(toolrun) == []
    toolchain("invalid", "toolchain:\n  - a: {cmd: probe, version: 1.10}\n")
    invalid = toolrun("run", "invalid")
    assert (
        invalid.returncode == 3
        and "invalid.yaml:2:" in invalid.stderr
        and "quote it" in invalid.stderr
    )
    typo = toolrun("run", "broke")
    assert typo.returncode == 4 and "did you mean broken" in typo.stderr


def test_toolchain_commands(probe: Path, toolchain: WriteToolchain, toolrun: Toolrun) -> None:
    toolchain("good", "description: fine\nparams: {x: 1}\ntoolchain:\n  - a: {cmd: probe}\n")
    toolchain("bad", "toolchain:\n  - a: {cmd: probe, neds: []}\n")
    listing = json.loads(toolrun("toolchain", "list", "--json").stdout)
    assert {(t["name"], t["valid"]) for t in listing} == {("good", True), ("bad", False)}
    assert "x (integer) = 1" in toolrun("toolchain", "show", "good").stdout
    validate = toolrun("toolchain", "validate")
    assert validate.returncode == 3 and "did you mean 'needs'" in validate.stderr
    assert toolrun("toolchain", "validate", "good").returncode == 0


def test_json_output_is_the_event_stream(
    probe: Path, toolchain: WriteToolchain, toolrun: Toolrun
) -> None:
    toolchain("one", "toolchain:\n  - a: {cmd: probe, args: [echo, x]}\n")
    result = toolrun("run", "one", "--json")
    events = [json.loads(line) for line in result.stdout.splitlines()]
    assert [e["kind"] for e in events] == [
        "run_started",
        "step_started",
        "output",
        "step_finished",
        "run_finished",
    ]
    assert events[2]["lines"] == ["x"] and events[2]["stream"] == "stdout"


def test_toolchains_from_the_environment_folder(
    probe: Path, toolrun: Toolrun, tmp_path: Path
) -> None:
    folder = tmp_path / "shared"
    folder.mkdir()
    (folder / "elsewhere.yaml").write_text("toolchain:\n  - a: {cmd: probe, args: [echo, hi]}\n")
    result = toolrun("run", "elsewhere", env={"TOOLRUN_TOOLCHAINS": str(folder)})
    assert result.returncode == 0 and "hi" in result.stdout
