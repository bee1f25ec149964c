"""Nothing of a step outlives it, not even a grandchild that turned itself into a daemon; and a
step that times out ends on time and is recorded as timed out."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from conftest import StartDaemon, Toolrun, WriteToolchain, run_toolrun

from toolrun.executors.containment import (
    CGROUP,
    GROUP,
    cgroup2_mount,
    describe_containment,
    holder_name,
    kind_in_force,
    own_cgroup,
)

needs_cgroups = pytest.mark.skipif(
    kind_in_force() != CGROUP, reason="this machine gives toolrun no cgroup v2 to write"
)


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def wait_for(path: Path, seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.02)


def daemon_pid(toolrun_home: Path, seconds: float = 20) -> int:
    """The pid the probe's daemon wrote in its run's workspace, once it is there."""
    deadline = time.monotonic() + seconds
    while not (found := list(toolrun_home.glob("runs/*/work/daemon.pid"))):
        assert time.monotonic() < deadline, "the probe's daemon never started"
        time.sleep(0.02)
    return int(found[0].read_text())


def gone_soon(pid: int, seconds: float = 5) -> bool:
    deadline = time.monotonic() + seconds
    while alive(pid):
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)  # leave nothing behind for the next test
            return False
        time.sleep(0.02)
    return True


# -- the machine's cgroups, read ---------------------------------------------------------------


def test_the_cgroup_v2_mount_and_own_cgroup_are_read_from_proc() -> None:
    mounts = (
        "tmpfs /sys/fs/cgroup tmpfs rw 0 0\n"
        "cgroup /sys/fs/cgroup/memory cgroup rw,memory 0 0\n"
        "cgroup2 /sys/fs/cgroup/unified cgroup2 rw,nsdelegate 0 0\n"
    )
    assert cgroup2_mount(mounts) == Path("/sys/fs/cgroup/unified")
    assert cgroup2_mount("proc /proc proc rw 0 0\n") is None
    assert own_cgroup("4:memory:/x\n0::/user.slice/app.scope\n") == "/user.slice/app.scope"
    assert own_cgroup("0::/\n") == "/"
    assert own_cgroup("1:name=systemd:/\n") is None
    assert holder_name(42, 1234.0) == "toolrun-42-1234"


def test_version_verbose_says_which_containment_is_in_force() -> None:
    shown = run_toolrun("--version", "--verbose")
    assert shown.returncode == 0
    assert describe_containment().split(" (")[0] in shown.stdout
    forced = run_toolrun("--version", "--verbose", env={"TOOLRUN_CONTAINMENT": "group"})
    assert "containment: process group" in forced.stdout
    assert "escape" in forced.stdout


# -- a daemonising grandchild -------------------------------------------------------------------


@needs_cgroups
def test_a_daemonised_grandchild_ends_when_its_step_exits(
    probe: Path, toolrun: Toolrun, toolrun_home: Path
) -> None:
    result = toolrun("exec", "probe", "--", "daemonize", "daemon.pid")
    assert result.returncode == 0, result.stderr
    assert gone_soon(daemon_pid(toolrun_home))


@needs_cgroups
def test_a_daemonised_grandchild_ends_with_a_timed_out_step(
    probe: Path, toolchain: WriteToolchain, toolrun: Toolrun, toolrun_home: Path
) -> None:
    toolchain(
        "slow",
        "toolchain:\n"
        "  - a: {cmd: probe, args: [daemonize, daemon.pid, '60'], timeout: 2s}\n"
        "  - b: {cmd: probe, args: [echo, never]}\n",
    )
    result = toolrun("run", "slow", "--plain")
    assert result.returncode == 1, result.stdout + result.stderr
    assert gone_soon(daemon_pid(toolrun_home))


@needs_cgroups
def test_a_daemonised_grandchild_ends_with_a_cancelled_run(
    daemon: StartDaemon, toolrun_home: Path
) -> None:
    import httpx

    server = daemon()
    body = {"cmd": "probe", "args": ["daemonize", "daemon.pid", "60"]}
    run = httpx.post(f"{server.url}/api/v1/runs", json=body, timeout=30).json()
    wait_for(toolrun_home / "runs" / run["id"] / "work" / "daemon.pid")
    pid = daemon_pid(toolrun_home)
    assert alive(pid)
    httpx.post(f"{server.url}/api/v1/runs/{run['id']}/cancel", timeout=30)
    assert gone_soon(pid)


@needs_cgroups
def test_a_daemonised_grandchild_ends_when_the_next_toolrun_finds_its_runner_killed(
    probe: Path, toolchain: WriteToolchain, workdir: Path, toolrun_home: Path
) -> None:
    toolchain("slow", "toolchain:\n  - a: {cmd: probe, args: [daemonize, daemon.pid, '60']}\n")
    # The runner and the next toolrun in a cgroup of their own: any toolrun sweeps what dead
    # toolruns left beside it, and the suite's other tests start toolruns all the time.
    alone = own_cgroup_home(workdir.name)
    runner = subprocess.Popen(
        [sys.executable, "-m", "toolrun", "run", "slow", "--plain"],
        cwd=workdir,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        preexec_fn=lambda: join_cgroup(alone),
    )
    try:
        pid = daemon_pid(toolrun_home)
    except AssertionError:
        runner.kill()
        raise
    runner.send_signal(signal.SIGKILL)
    runner.wait()
    time.sleep(0.2)
    assert alive(pid)  # its runner is dead, and nothing has ended it yet
    listed = subprocess.run(
        [sys.executable, "-m", "toolrun", "history", "--json"],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=60,
        preexec_fn=lambda: join_cgroup(alone),
    )
    assert json.loads(listed.stdout)[0]["status"] == "interrupted"
    assert gone_soon(pid)
    holders = list(alone.glob("toolrun-*"))
    assert not any(holder.name.startswith(f"toolrun-{runner.pid}-") for holder in holders)
    for holder in holders:  # the history command's own, empty now
        with contextlib.suppress(OSError):
            holder.rmdir()
    with contextlib.suppress(OSError):
        alone.rmdir()


def own_cgroup_home(name: str) -> Path:
    """A fresh cgroup beside the test's toolruns, for processes that must be alone in it."""
    mount = cgroup2_mount(Path("/proc/self/mounts").read_text())
    here = own_cgroup(Path("/proc/self/cgroup").read_text())
    assert mount is not None and here is not None
    path = mount / here.lstrip("/") / f"test-{name}-{os.getpid()}"
    path.mkdir(exist_ok=True)
    return path


def join_cgroup(path: Path) -> None:
    (path / "cgroup.procs").write_text(str(os.getpid()))


def test_without_cgroups_a_tree_still_ends_with_its_step(
    probe: Path, toolrun: Toolrun, toolrun_home: Path
) -> None:
    env = {"TOOLRUN_CONTAINMENT": "group"}
    result = toolrun("exec", "--timeout", "1s", "probe", "--", "tree", "pids", env=env)
    assert result.returncode == 124
    (pids,) = toolrun_home.glob("runs/*/work/pids")
    for pid in map(int, pids.read_text().split()):
        assert gone_soon(pid), pid
    assert kind_in_force() in (CGROUP, GROUP)


# -- timeouts -----------------------------------------------------------------------------------


@pytest.mark.parametrize("steps", [1, 2])
def test_a_timed_out_step_ends_on_time_and_records_no_exit_code(
    probe: Path, toolchain: WriteToolchain, toolrun: Toolrun, steps: int
) -> None:
    body = "toolchain:\n  - a: {cmd: probe, args: [sleep, '30'], timeout: 2s}\n"
    if steps == 2:
        body += "  - b: {cmd: probe, args: [echo, x], needs: []}\n"
    toolchain("slow", body)
    result = toolrun("run", "slow", "--json")
    assert result.returncode == 1, result.stderr
    assert "Unknown child process" not in result.stderr
    events = [json.loads(line) for line in result.stdout.splitlines()]
    (finished,) = [e for e in events if e["kind"] == "step_finished" and e["step"] == "a"]
    assert finished["status"] == "timed_out" and finished["exit_code"] is None
    assert 2.0 <= finished["duration"] < 2.1, finished
    shown = json.loads(toolrun("show", events[0]["run"], "--json").stdout)
    (step,) = [s for s in shown["steps"] if s["id"] == "a"]
    assert (step["status"], step["exit_code"]) == ("timed_out", None)


def test_a_timed_out_exec_ends_on_time_and_records_no_exit_code(
    probe: Path, toolrun: Toolrun
) -> None:
    started = time.monotonic()
    result = toolrun("exec", "--timeout", "2s", "probe", "--", "sleep", "30")
    took = time.monotonic() - started
    assert result.returncode == 124
    assert "Unknown child process" not in result.stderr
    (run,) = json.loads(toolrun("history", "--json").stdout)
    shown = json.loads(toolrun("show", run["id"], "--json").stdout)
    assert (shown["status"], shown["steps"][0]["exit_code"]) == ("timed_out", None)
    assert shown["steps"][0]["duration"] < 2.1
    assert took < 4  # Python's start-up and the record, beside the 2 s


def test_a_tool_that_ignores_the_polite_signal_gets_the_grace_then_force(
    probe: Path, toolchain: WriteToolchain, toolrun: Toolrun
) -> None:
    assert toolrun("config", "set", "kill_grace", "1").returncode == 0
    toolchain("stubborn", "toolchain:\n  - a: {cmd: probe, args: [stubborn, pid], timeout: 1s}\n")
    result = toolrun("run", "stubborn", "--json")
    events = [json.loads(line) for line in result.stdout.splitlines()]
    (finished,) = [e for e in events if e["kind"] == "step_finished"]
    assert finished["status"] == "timed_out"
    assert 2.0 <= finished["duration"] < 2.2, finished
