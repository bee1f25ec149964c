"""Runs end to end through the real CLI: real processes, a temporary TOOLRUN_HOME."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil
import pytest
from conftest import Toolrun, WriteToolchain


def events_of(home: Path, run_id: str) -> list[dict[str, Any]]:
    path = home / "runs" / run_id / "events.jsonl"
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def only_run(toolrun: Toolrun) -> dict[str, Any]:
    runs: list[dict[str, Any]] = json.loads(toolrun("history", "--json").stdout)
    assert len(runs) >= 1
    return runs[0]


def shown(toolrun: Toolrun, run_id: str) -> dict[str, Any]:
    run: dict[str, Any] = json.loads(toolrun("show", run_id, "--json").stdout)
    return run


# A run of one plain step executes on the CLI's thread (threaded_driver); with a second step it
# takes the event loop (async_driver). Tests of process control run both ways.
DRIVERS = {"threaded": "", "event-loop": "\n  - later: {cmd: probe, args: [echo, never]}"}


@pytest.fixture(params=list(DRIVERS))
def second_step(request: pytest.FixtureRequest) -> str:
    return DRIVERS[request.param]


def test_a_toolchain_runs_in_order_passing_outputs_and_files(
    probe: Path, toolchain: WriteToolchain, toolrun: Toolrun, toolrun_home: Path
) -> None:
    toolchain(
        "pass",
        """
params:
  word: hello
toolchain:
  - make:
      cmd: probe
      version: "1.0"
      args: [output, "WORD=${{ params.word }}", "SPACED=a b"]
  - save:
      cmd: probe
      args: [write, data.txt, "${{ steps.make.outputs.WORD }} and ${{ steps.make.outputs.SPACED }}"]
  - use:
      cmd: probe
      args: [read, ./data.txt]
""",
    )
    result = toolrun("run", "pass", "word=héllo wörld")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "use  | héllo wörld and a b" in result.stdout
    run = only_run(toolrun)
    assert run["status"] == "succeeded" and run["params"] == {"word": "héllo wörld"}
    details = shown(toolrun, run["id"])
    assert [s["version"] for s in details["steps"]] == ["1.0.0", "2.0.0", "2.0.0"]
    assert all(len(s["sha256"]) == 64 for s in details["steps"])
    assert details["steps"][0]["outputs"] == {"WORD": "héllo wörld", "SPACED": "a b"}
    workspace = toolrun_home / "runs" / run["id"] / "work"
    assert (workspace / "data.txt").read_text(encoding="utf-8") == "héllo wörld and a b"
    folder = toolrun_home / "runs" / run["id"]
    assert (folder / "toolchain.yaml").read_text().startswith("\nparams")
    # Only the step that wrote outputs has a file for them: each new file costs
    # (history/ownership.py).
    assert sorted(p.name for p in folder.iterdir()) == [
        "events.jsonl",
        "outputs.make.1.env",
        "owner.lock",
        "toolchain.yaml",
        "work",
    ]


def test_failures_skip_dependents_unless_allowed(
    probe: Path, toolchain: WriteToolchain, toolrun: Toolrun
) -> None:
    toolchain(
        "fails",
        """
toolchain:
  - soft: {cmd: probe, args: [fail, "3"], continue_on_error: true}
  - after-soft: {cmd: probe, args: [echo, ran-after-soft]}
  - hard: {cmd: probe, args: [fail, "4"], needs: []}
  - after-hard: {cmd: probe, args: [echo, never], needs: [hard]}
  - cleanup:
      {cmd: probe, args: [echo, "cleanup ${{ steps.hard.outcome }}"], needs: [hard], if: always()}
  - on-failure: {cmd: probe, args: [echo, reporting], needs: [hard], if: failure()}
  - cond: {cmd: probe, args: [echo, never], needs: [], if: "${{ platform == 'beos' }}"}
""",
    )
    result = toolrun("run", "fails")
    assert result.returncode == 1
    states = {s["id"]: s["status"] for s in shown(toolrun, only_run(toolrun)["id"])["steps"]}
    assert states == {
        "soft": "failed",
        "after-soft": "succeeded",
        "hard": "failed",
        "after-hard": "skipped",
        "cleanup": "succeeded",
        "on-failure": "succeeded",
        "cond": "skipped",
    }
    assert "cleanup failure" in result.stdout
    assert "failed (allowed)" in result.stdout
    assert "never" not in result.stdout


def test_retries_with_backoff_number_every_attempt(
    probe: Path,
    toolchain: WriteToolchain,
    toolrun: Toolrun,
    toolrun_home: Path,
    tmp_path: Path,
    second_step: str,
) -> None:
    counter = tmp_path / "counter"
    toolchain(
        "flaky",
        f"""
toolchain:
  - flaky:
      cmd: probe
      args: [flaky, "{counter}", "3"]
      retries: {{max: 3, delay: 0.1s, backoff: 2}}{second_step.replace("never", "after")}
""",
    )
    started = time.monotonic()
    result = toolrun("run", "flaky")
    assert result.returncode == 0, result.stdout
    assert time.monotonic() - started >= 0.3  # 0.1s then 0.2s between the attempts
    run_id = only_run(toolrun)["id"]
    step = shown(toolrun, run_id)["steps"][0]
    assert step["attempts"] == 3
    outputs = [
        (e["attempt"], e["lines"])
        for e in events_of(toolrun_home, run_id)
        if e["kind"] == "output" and e["step"] == "flaky"
    ]
    assert outputs == [(1, ["call 1"]), (2, ["call 2"]), (3, ["call 3"])]
    finished = [
        e
        for e in events_of(toolrun_home, run_id)
        if e["kind"] == "step_finished" and e["step"] == "flaky"
    ]
    assert [(e["attempt"], e["status"]) for e in finished] == [
        (1, "failed"),
        (2, "failed"),
        (3, "succeeded"),
    ]


def tree_is_gone(pid_file: Path) -> list[int]:
    pids = [int(p) for p in pid_file.read_text().split()]
    assert len(pids) == 3
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        alive = [p for p in pids if psutil.pid_exists(p) and psutil.Process(p).status() != "zombie"]
        if not alive:
            return pids
        time.sleep(0.05)
    pytest.fail(f"processes of the run's tree survived: {alive}")


def test_a_step_timeout_ends_the_whole_tree(
    probe: Path, toolchain: WriteToolchain, toolrun: Toolrun, tmp_path: Path
) -> None:
    pid_file = tmp_path / "pids"
    toolchain(
        "slow",
        f"""
toolchain:
  - tree: {{cmd: probe, args: [tree, "{pid_file}"], timeout: 1s}}
  - after: {{cmd: probe, args: [echo, never]}}
""",
    )
    started = time.monotonic()
    result = toolrun("run", "slow")
    assert time.monotonic() - started < 15
    assert result.returncode == 1  # a step that timed out fails the run
    tree_is_gone(pid_file)
    steps = shown(toolrun, only_run(toolrun)["id"])["steps"]
    assert [s["status"] for s in steps] == ["timed_out", "skipped"]
    assert "step timed out after 1s" in result.stdout


def test_a_step_timeout_in_a_run_of_one_step(
    probe: Path, toolchain: WriteToolchain, toolrun: Toolrun, tmp_path: Path
) -> None:
    pid_file = tmp_path / "pids"
    toolchain(
        "slow1", f'toolchain:\n  - tree: {{cmd: probe, args: [tree, "{pid_file}"], timeout: 1s}}\n'
    )
    result = toolrun("run", "slow1")
    assert result.returncode == 1
    tree_is_gone(pid_file)
    step = shown(toolrun, only_run(toolrun)["id"])["steps"][0]
    assert (step["status"], step["error"]) == ("timed_out", "step timed out after 1s")


def test_a_run_timeout_exits_124(
    probe: Path, toolchain: WriteToolchain, toolrun: Toolrun, tmp_path: Path, second_step: str
) -> None:
    pid_file = tmp_path / "pids"
    hang = f'toolchain:\n  - tree: {{cmd: probe, args: [tree, "{pid_file}"]}}{second_step}\n'
    toolchain("hang", hang)
    result = toolrun("run", "hang", "--timeout", "1s")
    assert result.returncode == 124
    tree_is_gone(pid_file)
    assert only_run(toolrun)["status"] == "timed_out"


def start_run(workdir: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "toolrun", *args],
        cwd=workdir,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for(path: Path, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not (path.exists() and path.read_text().count(" ") >= 2):
        if time.monotonic() > deadline:
            pytest.fail(f"{path} never appeared")
        time.sleep(0.02)


def test_ctrl_c_cancels_cleanly_with_exit_130(
    probe: Path,
    toolchain: WriteToolchain,
    workdir: Path,
    tmp_path: Path,
    toolrun: Toolrun,
    second_step: str,
) -> None:
    pid_file = tmp_path / "pids"
    hang = f'toolchain:\n  - tree: {{cmd: probe, args: [tree, "{pid_file}"]}}{second_step}\n'
    toolchain("hang", hang)
    process = start_run(workdir, "run", "hang")
    wait_for(pid_file)
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=30)
    assert process.returncode == 130, out + err
    assert "cancelling the run" in err
    tree_is_gone(pid_file)
    assert only_run(toolrun)["status"] == "cancelled"


def test_ctrl_c_twice_forces_a_tool_that_ignores_the_polite_signal(
    probe: Path,
    toolchain: WriteToolchain,
    workdir: Path,
    tmp_path: Path,
    toolrun: Toolrun,
    second_step: str,
) -> None:
    pid_file = tmp_path / "pid"
    toolchain(
        "stubborn",
        f'toolchain:\n  - s: {{cmd: probe, args: [stubborn, "{pid_file}"]}}{second_step}\n',
    )
    process = start_run(workdir, "run", "stubborn")
    deadline = time.monotonic() + 20
    while not pid_file.exists() or not pid_file.read_text().strip():
        assert time.monotonic() < deadline, "the tool never started"
        time.sleep(0.02)
    pid = int(pid_file.read_text())
    process.send_signal(signal.SIGINT)
    time.sleep(0.5)
    assert psutil.pid_exists(pid)  # SIGTERM ignored: waiting out the 5 s grace
    pressed = time.monotonic()
    process.send_signal(signal.SIGINT)
    process.communicate(timeout=30)
    assert time.monotonic() - pressed < 3  # forced at once, not at the end of the grace
    assert process.returncode == 130
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == "zombie"


def test_cancel_from_another_process(
    probe: Path,
    toolchain: WriteToolchain,
    workdir: Path,
    tmp_path: Path,
    toolrun: Toolrun,
    second_step: str,
) -> None:
    pid_file = tmp_path / "pids"
    hang = f'toolchain:\n  - tree: {{cmd: probe, args: [tree, "{pid_file}"]}}{second_step}\n'
    toolchain("hang", hang)
    process = start_run(workdir, "run", "hang")
    wait_for(pid_file)
    run_id = only_run(toolrun)["id"]
    cancel = toolrun("cancel", run_id)
    assert cancel.returncode == 0, cancel.stderr
    process.communicate(timeout=30)
    assert process.returncode == 130
    tree_is_gone(pid_file)
    assert toolrun("cancel", run_id).returncode == 2  # already ended


def test_a_killed_runner_leaves_an_interrupted_run_with_its_events(
    probe: Path,
    toolchain: WriteToolchain,
    workdir: Path,
    tmp_path: Path,
    toolrun: Toolrun,
    toolrun_home: Path,
) -> None:
    pid_file = tmp_path / "pids"
    toolchain("hang", f'toolchain:\n  - tree: {{cmd: probe, args: [tree, "{pid_file}"]}}\n')
    process = start_run(workdir, "run", "hang")
    wait_for(pid_file)
    time.sleep(0.2)
    process.kill()
    process.communicate()
    run_id = json.loads(
        subprocess.run(
            [
                sys.executable,
                "-c",
                "import sqlite3, sys, json; db = sqlite3.connect(sys.argv[1]);"
                "print(json.dumps(db.execute('select id, status from runs').fetchall()))",
                str(toolrun_home / "history.db"),
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )[0][0]
    stored = events_of(toolrun_home, run_id)
    assert [e["kind"] for e in stored][:2] == ["run_started", "step_started"]
    assert any(e["kind"] == "output" and e["lines"] == ["tree started"] for e in stored)
    run = only_run(toolrun)  # any toolrun start marks it, and ends what its step left running
    assert run["status"] == "interrupted"
    # The log is kept as it was, and closed with the run_finished its toolrun never wrote.
    *kept, final = events_of(toolrun_home, run_id)
    assert kept == stored
    assert final["kind"] == "run_finished" and final["status"] == "interrupted"
    assert final["seq"] == stored[-1]["seq"] + 1
    tree_is_gone(pid_file)


def test_a_killed_runner_whose_tool_already_exited_leaves_no_children(
    probe: Path,
    toolchain: WriteToolchain,
    workdir: Path,
    tmp_path: Path,
    toolrun: Toolrun,
    second_step: str,
) -> None:
    """The step's leader is gone, its children live on in its process group: the group's
    number cannot have been given to anything else, so the next toolrun ends the group."""
    pid_file = tmp_path / "pids"
    leave = f'toolchain:\n  - leave: {{cmd: probe, args: [leave, "{pid_file}"]}}{second_step}\n'
    toolchain("leave", leave)
    runner = start_run(workdir, "run", "leave")
    wait_for(pid_file)
    leader = int(pid_file.read_text().split()[0])
    deadline = time.monotonic() + 10
    while psutil.pid_exists(leader) and psutil.Process(leader).status() != "zombie":
        assert time.monotonic() < deadline, "the leader never exited"
        time.sleep(0.01)
    # Killed while it waits (1 s) for the children that hold the output open.
    runner.kill()
    runner.communicate()
    assert only_run(toolrun)["status"] == "interrupted"
    tree_is_gone(pid_file)


def test_following_a_run_whose_runner_dies_ends_its_tools(
    probe: Path, toolchain: WriteToolchain, workdir: Path, tmp_path: Path, toolrun: Toolrun
) -> None:
    pid_file = tmp_path / "pids"
    toolchain("hang", f'toolchain:\n  - tree: {{cmd: probe, args: [tree, "{pid_file}"]}}\n')
    runner = start_run(workdir, "run", "hang")
    wait_for(pid_file)
    follower = start_run(workdir, "logs", "-f", only_run(toolrun)["id"])
    time.sleep(0.5)  # the follower has opened the store while the run was alive
    runner.kill()
    runner.communicate()
    out, err = follower.communicate(timeout=30)
    assert "tree started" in out, err
    tree_is_gone(pid_file)
    assert only_run(toolrun)["status"] == "interrupted"


@pytest.mark.parametrize(
    ("args", "status", "expect"),
    [
        (["signal"], "failed", "killed by SIGKILL"),
        (["fail", "7"], "failed", "exit 7"),
        (["close-stdout"], "succeeded", "closing"),
        (["binary"], "succeeded", "ok \ufffd\ufffd\x00 bytes"),
        # What a step leaves at $TOOLRUN_OUTPUT is read only if it is a file, and only so much.
        (["output-as", "dir"], "succeeded", "not a file, ignored"),
        (["output-as", "fifo"], "succeeded", "not a file, ignored"),
        (["output-as", "link"], "succeeded", "not a file, ignored"),
        (["output-as", "big"], "succeeded", "only the lines in its first 1024 KiB were read"),
    ],
    ids=["signal", "exit-code", "closes-stdout", "binary", "dir", "fifo", "link", "big"],
)
def test_misbehaving_tools(
    probe: Path, toolrun: Toolrun, toolrun_home: Path, args: list[str], status: str, expect: str
) -> None:
    result = toolrun("exec", "probe", "--", *args)
    run = only_run(toolrun)
    assert run["status"] == status
    text = json.dumps(events_of(toolrun_home, run["id"]), ensure_ascii=False)
    assert json.dumps(expect, ensure_ascii=False)[1:-1] in text
    if args[0] == "signal":
        assert result.returncode == 128 + 9
    if args == ["output-as", "big"]:
        outputs = shown(toolrun, run["id"])["steps"][0]["outputs"]
        assert "K0" in outputs and "K19999" not in outputs and len(outputs) > 9000
    if args == ["output-as", "link"]:
        assert shown(toolrun, run["id"])["steps"][0]["outputs"] == {}


def test_a_tool_that_cannot_start(probe: Path, toolrun: Toolrun, toolrun_home: Path) -> None:
    main = toolrun_home / "tools"
    assert toolrun("tool", "install", "probe").returncode == 0
    manifest = main / "probe" / "2.0.0" / ".toolrun-receipt.json"
    receipt = json.loads(manifest.read_text())
    receipt["manifest"]["command"] = ["{tool_dir}/main.py"]  # not executable
    manifest.write_text(json.dumps(receipt))
    result = toolrun("exec", "probe@2", "--", "echo", "x")
    assert result.returncode == 127
    assert "not executable" in result.stderr


def test_enormous_lines_are_cut_not_fatal(
    probe: Path, toolrun: Toolrun, toolrun_home: Path
) -> None:
    result = toolrun("exec", "probe", "--", "bigline", "1000000")
    assert result.returncode == 0
    assert len(result.stdout) == 1000001  # exec passes the bytes through untouched
    lines = [
        line
        for event in events_of(toolrun_home, only_run(toolrun)["id"])
        if event["kind"] == "output"
        for line in event["lines"]
    ]
    assert "".join(lines) == "x" * 1000000
    assert max(len(line) for line in lines) == 64 * 1024


def test_children_that_outlive_the_tool_are_ended(
    probe: Path, toolrun: Toolrun, tmp_path: Path
) -> None:
    pid_file = tmp_path / "orphan"
    started = time.monotonic()
    result = toolrun("exec", "probe", "--", "orphan", str(pid_file))
    assert result.returncode == 0
    assert time.monotonic() - started < 15
    pid = int(pid_file.read_text())
    deadline = time.monotonic() + 5
    while psutil.pid_exists(pid) and psutil.Process(pid).status() != "zombie":
        assert time.monotonic() < deadline, "the orphan survived its step"
        time.sleep(0.05)


def test_exec_passes_output_and_exit_code_through(probe: Path, toolrun: Toolrun) -> None:
    result = toolrun("exec", "probe@1", "--", "echo", "a b", "${{ not.expanded }}")
    assert result.stdout == "a b\n${{ not.expanded }}\n"
    failed = toolrun("exec", "probe", "--", "fail", "9")
    assert failed.returncode == 9
    assert toolrun("exec", "probe", "--", "stderr", "to err").stderr == "to err\n"
    run = only_run(toolrun)
    assert run["toolchain"] == "probe" and run["origin"] == "cli"


def test_the_environment_is_clean(
    probe: Path, toolrun: Toolrun, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SECRET_TOKEN", "leak")
    monkeypatch.setenv("LC_ALL", "C.UTF-8")
    result = toolrun("exec", "probe", "--", "env", "SECRET_TOKEN", "LC_ALL", "PATH", "TOOLRUN_STEP")
    lines = result.stdout.splitlines()
    assert "SECRET_TOKEN=<unset>" in lines
    assert "LC_ALL=C.UTF-8" in lines
    assert "TOOLRUN_STEP=probe" in lines
    assert any(line.startswith("PATH=/") for line in lines)


def test_output_cap_truncates_the_log_and_the_tool_keeps_running(
    probe: Path, toolrun: Toolrun, toolrun_home: Path
) -> None:
    assert toolrun("config", "set", "output_cap", "10KB").returncode == 0
    result = toolrun("exec", "probe", "--", "lines", "5000")
    assert result.returncode == 0
    assert result.stdout.count("\n") == 5000  # the terminal still sees everything
    stored = events_of(toolrun_home, only_run(toolrun)["id"])
    kept = sum(len(e["lines"]) for e in stored if e["kind"] == "output")
    assert 0 < kept < 5000
    assert any(e["kind"] == "output_truncated" for e in stored)
    assert stored[-1]["kind"] == "run_finished" and stored[-1]["status"] == "succeeded"


def test_two_million_lines_are_all_stored(
    probe: Path, toolrun: Toolrun, toolrun_home: Path, workdir: Path
) -> None:
    assert toolrun("config", "set", "log_format", "both").returncode == 0
    result = toolrun("run", "--plain", sys_path_toolchain(workdir, "big"), timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    run_id = only_run(toolrun)["id"]
    count = 0
    last = None
    for event in events_of(toolrun_home, run_id):
        if event["kind"] == "output":
            count += len(event["lines"])
            last = event["lines"][-1]
    assert count == 2_000_000
    assert last == "line 1999999 of the probe's output"
    with (toolrun_home / "runs" / run_id / "output.log").open() as log:
        assert sum(1 for _ in log) == 2_000_000


def sys_path_toolchain(workdir: Path, name: str) -> str:
    folder = workdir / "toolchains"
    folder.mkdir(exist_ok=True)
    (folder / f"{name}.yaml").write_text(
        "toolchain:\n  - big: {cmd: probe, args: [lines, '2000000']}\n"
    )
    return name


def test_run_ids_are_unique_across_processes(
    probe: Path, toolrun: Toolrun, workdir: Path, toolrun_home: Path
) -> None:
    assert toolrun("tool", "install", "probe").returncode == 0
    script = (
        "import sys\n"
        "from toolrun.__main__ import main\n"
        "for _ in range(50):\n"
        "    try:\n"
        "        main(['exec', '--offline', 'probe', '--', 'echo', 'x'])\n"
        "    except SystemExit as exit:\n"
        "        assert exit.code in (0, None), exit.code\n"
    )
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", script],
            cwd=workdir,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    errors = [p.communicate(timeout=300)[1] for p in processes]
    assert [p.returncode for p in processes] == [0, 0, 0, 0], errors
    assert not any("locked" in e for e in errors)
    runs = json.loads(toolrun("history", "--json", "--limit", "500").stdout)
    assert len(runs) == 200
    assert len({r["id"] for r in runs}) == 200
    assert all(r["status"] == "succeeded" for r in runs)


@pytest.mark.parametrize("command", ["exec", "run", "run --json"])
def test_a_reader_that_goes_away_cancels_the_run_quietly(
    probe: Path, toolchain: WriteToolchain, workdir: Path, toolrun: Toolrun, command: str
) -> None:
    """`toolrun run X | head`: toolrun ends like a pipeline's writer, and the run is recorded."""
    toolchain("many", "toolchain:\n  - many: {cmd: probe, args: [lines, '2000000']}\n")
    args = {
        "exec": ["exec", "probe", "--", "lines", "2000000"],
        "run": ["run", "--plain", "many"],
        "run --json": ["run", "--json", "many"],
    }[command]
    process = subprocess.Popen(
        [sys.executable, "-m", "toolrun", *args],
        cwd=workdir,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert process.stdout is not None
    assert process.stdout.readline()
    process.stdout.close()
    _, err = process.communicate(timeout=60)
    assert process.returncode == 141, err
    assert b"Traceback" not in err and b"Broken pipe" not in err, err
    run = only_run(toolrun)
    assert run["status"] == "cancelled"


@pytest.mark.parametrize("steps", [1, 2])  # the threaded driver, and the event loop's
def test_a_run_writes_its_books_in_few_transactions(
    probe: Path, toolrun_home: Path, steps: int
) -> None:
    """Recorded (before this counts), its attempt starting, its process's id, its end: four
    write transactions for a run of one step, two more per further step, where each change was
    one before (issue 16). What was deferred is in the rows all the same."""
    from tui_run_test import prepare

    text = "toolchain:\n  - a: {cmd: probe, args: [echo, hi]}\n"
    if steps == 2:
        text += "  - b: {cmd: probe, args: [echo, ho], needs: [a]}\n"
    engine, handle = prepare(toolrun_home, probe, text)
    writes: list[str] = []
    with engine.store.connect() as db:
        db.set_trace_callback(lambda sql: writes.append(sql) if sql.startswith("BEGIN") else None)
    if steps == 1:
        final = engine.execute_here(handle)
        assert len(writes) == 3, writes  # the attempt starting, its pid, the end
    else:
        import asyncio

        final = asyncio.run(engine.execute(handle))
        # Each attempt's start and pid, the end; at most one flush between (every 50 ms).
        assert 5 <= len(writes) <= 6, writes
    assert final.status == "succeeded"
    rows = engine.store.steps(handle.id)
    assert [(s.status, s.attempts, s.exit_code) for s in rows] == [("succeeded", 1, 0)] * steps
    assert all(s.started_at and s.finished_at for s in rows)
    assert final.started_at and final.finished_at
