"""Pause and resume, from another process, over HTTP and in the run view: no further step
starts, --now freezes the whole tree (a cgroup's freezer, or SIGSTOP to the group), paused
time stops the run's clock and frozen time the steps', and a run paused too long is
cancelled."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import msgspec
import psutil
import pytest
from conftest import StartDaemon, Toolrun, WriteToolchain

from toolrun.executors.containment import freeze_refusal
from toolrun.runs.event_shapes import Event, RunPaused, RunResumed
from toolrun.runs.pausing import FROZEN, GOING, PAUSED, PauseClock

TWO_STEPS = """timeout: 6s
toolchain:
  - first: {cmd: probe, args: [sleep, '3']}
  - second: {cmd: probe, args: [echo, second], needs: [first]}
"""


def test_the_clock_leaves_out_paused_and_frozen_time() -> None:
    clock = PauseClock()
    clock.change(PAUSED, 10.0)
    clock.change(FROZEN, 12.0)
    clock.change(PAUSED, 15.0)
    clock.change(GOING, 16.0)
    assert clock.paused_between(0.0, 20.0) == 6.0
    assert clock.frozen_between(0.0, 20.0) == 3.0
    assert clock.frozen_between(13.0, 14.0) == 1.0
    assert clock.left(10.0, 0.0, 20.0) == 10.0 - (20.0 - 6.0)
    assert clock.left(10.0, 0.0, 20.0, frozen=True) == 10.0 - (20.0 - 3.0)
    clock.change(FROZEN, 30.0)  # still going: counted up to now
    assert clock.frozen_between(0.0, 31.5) == 4.5
    assert clock.since == 30.0


def test_windows_refuses_now_with_a_reason() -> None:
    refusal = freeze_refusal("win32")
    assert refusal is not None and "pause without --now" in refusal
    assert freeze_refusal("linux") is None


class Background:
    """`toolrun run NAME --json` in a subprocess, its events read as they come."""

    def __init__(self, cwd: Path, *args: str, env: dict[str, str] | None = None) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "toolrun", "run", *args, "--json"],
            cwd=cwd,
            env={**os.environ, **(env or {})},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.events: list[dict[str, Any]] = []
        import threading

        def read() -> None:
            assert self.process.stdout is not None
            for line in self.process.stdout:
                self.events.append(json.loads(line))

        self.reader = threading.Thread(target=read, daemon=True)
        self.reader.start()

    def wait_for(self, check: Any, seconds: float = 15) -> dict[str, Any]:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            for event in list(self.events):
                if check(event):
                    return event
            time.sleep(0.02)
        raise AssertionError(f"never came; got {[e['kind'] for e in self.events]}")

    @property
    def run_id(self) -> str:
        return str(self.wait_for(lambda e: e["kind"] == "run_started")["run"])

    def end(self, seconds: float = 30) -> int:
        code = self.process.wait(seconds)
        self.reader.join(5)
        return code

    def lines(self) -> list[tuple[float, str]]:
        return [(e["t"], line) for e in self.events if e["kind"] == "output" for line in e["lines"]]


@pytest.fixture
def background(workdir: Path) -> Iterator[Any]:
    started: list[Background] = []

    def start(*args: str, env: dict[str, str] | None = None) -> Background:
        run = Background(workdir, *args, env=env)
        started.append(run)
        return run

    yield start
    for run in started:
        if run.process.poll() is None:
            run.process.kill()
            run.process.wait()


def test_a_paused_run_starts_no_further_step_and_its_timeout_waits(
    toolrun: Toolrun, toolchain: WriteToolchain, probe: Path, background: Any, toolrun_home: Path
) -> None:
    toolchain("two", TWO_STEPS)
    run = background("two")
    run_id = run.run_id
    paused = toolrun("pause", run_id)
    assert paused.returncode == 0, paused.stderr
    assert paused.stdout.strip() == f"run {run_id} paused: no further step starts"
    shown = json.loads(toolrun("show", run_id, "--json").stdout)
    assert shown["status"] == "paused"
    assert "paused" in toolrun("history").stdout
    run.wait_for(lambda e: e["kind"] == "step_finished" and e["step"] == "first")
    time.sleep(3.5)  # past the run's 6 s timeout, had the pause counted
    assert not any(e["kind"] == "step_started" and e["step"] == "second" for e in run.events)
    resumed = toolrun("resume", run_id)
    assert resumed.stdout.strip().startswith(f"run {run_id} resumed")
    assert run.end() == 0
    kinds = [e["kind"] for e in run.events]
    assert kinds.index("run_paused") < kinds.index("run_resumed") < len(kinds) - 1
    stored = (toolrun_home / "runs" / run_id / "events.jsonl").read_bytes().splitlines()
    decoded = [msgspec.json.decode(line, type=Event) for line in stored]
    [pause] = [e for e in decoded if isinstance(e, RunPaused)]
    [resume] = [e for e in decoded if isinstance(e, RunResumed)]
    assert pause.now is False and resume.paused >= 3.5
    # An ended run is neither paused nor resumed.
    again = toolrun("pause", run_id)
    assert again.returncode == 2
    assert "already ended: succeeded" in again.stderr


def placement(home: Path, run_id: str) -> tuple[int, str]:
    """The running step's process and cgroup, as the store keeps them for cleaning up."""
    import sqlite3

    with sqlite3.connect(f"file:{home / 'history.db'}?mode=ro", uri=True) as db:
        pid, box = db.execute(
            "SELECT pid, cgroup FROM steps WHERE run_id = ? AND status = 'running'", (run_id,)
        ).fetchone()
    return int(pid), str(box)


@pytest.mark.parametrize("containment", ["cgroup", "group"])
@pytest.mark.parametrize("steps", ["one", "two"])  # the threaded driver, and the event loop's
def test_pause_now_freezes_the_whole_tree_and_frozen_time_is_not_on_the_steps_clock(
    toolrun: Toolrun,
    toolchain: WriteToolchain,
    probe: Path,
    background: Any,
    toolrun_home: Path,
    containment: str,
    steps: str,
) -> None:
    from toolrun.executors.containment import kind_in_force

    if containment == "cgroup" and kind_in_force() != "cgroup":
        pytest.skip("this machine gives toolrun no cgroup v2 to write (containment_test.py too)")
    # 3 s of work (30 lines, 0.1 s apart) under a 4 s timeout, frozen 2.5 s in the middle
    # (3 s leave `toolrun pause` time to start on a loaded machine, under coverage).
    work = "{cmd: probe, args: [drip, '30', '0.1'], timeout: 4s}"
    text = f"toolchain:\n  - drip: {work}\n"
    if steps == "two":
        text += "  - after: {cmd: probe, args: [echo, done], needs: [drip]}\n"
    toolchain("frozen", text)
    env = {"TOOLRUN_CONTAINMENT": containment} if containment == "group" else {}
    run = background("frozen", env=env)
    run_id = run.run_id
    run.wait_for(lambda e: e["kind"] == "output" and "drip 3" in e["lines"])
    leader, box = placement(toolrun_home, run_id)
    frozen = toolrun("pause", run_id, "--now", env=env)
    assert frozen.stdout.strip() == f"run {run_id} paused, its steps frozen", frozen.stderr
    at = time.time()
    time.sleep(2.5)
    before = [t for t, line in run.lines() if line.startswith("drip")]
    assert all(t < at + 0.2 for t in before), "output came while frozen"
    if containment == "group":
        assert psutil.Process(leader).status() == psutil.STATUS_STOPPED
    else:
        assert "frozen 1" in Path(box, "cgroup.events").read_text()
    assert toolrun("resume", run_id, env=env).returncode == 0
    assert run.end() == 0, run.process.stderr.read() if run.process.stderr else ""
    finished = run.wait_for(lambda e: e["kind"] == "step_finished" and e["step"] == "drip")
    assert finished["status"] == "succeeded"  # 5.5 s on the wall, 3 s on its clock
    assert finished["duration"] >= 5.0


def test_cancel_reaches_a_frozen_run(
    toolrun: Toolrun, toolchain: WriteToolchain, probe: Path, background: Any
) -> None:
    toolchain("long", "toolchain:\n  - wait: {cmd: probe, args: [sleep, '60']}\n")
    run = background("long")
    run_id = run.run_id
    run.wait_for(lambda e: e["kind"] == "output")
    assert toolrun("pause", run_id, "--now").returncode == 0
    started = time.monotonic()
    assert toolrun("cancel", run_id).returncode == 0
    assert run.end() == 130
    assert time.monotonic() - started < 5, "a frozen process was not thawed to be ended"


def test_a_run_paused_past_the_limit_is_cancelled_with_that_reason(
    toolrun: Toolrun, toolchain: WriteToolchain, probe: Path, background: Any
) -> None:
    assert toolrun("config", "set", "pause_limit", "1s").returncode == 0
    toolchain("two", TWO_STEPS)
    run = background("two")
    run_id = run.run_id
    assert toolrun("pause", run_id).returncode == 0
    assert run.end() == 130
    said = run.wait_for(lambda e: e["kind"] == "message" and "paused for longer" in e["text"])
    assert said["text"] == "paused for longer than 1s: cancelled"


def test_the_daemon_pauses_and_resumes_over_http_and_says_so_everywhere(
    daemon: StartDaemon, toolchain: WriteToolchain, toolrun: Toolrun
) -> None:
    toolchain("two", TWO_STEPS)
    process = daemon()
    url = process.url
    with httpx.stream("GET", f"{url}/api/v1/events", timeout=30) as changes:
        lines = changes.iter_lines()
        run_id = httpx.post(f"{url}/api/v1/runs", json={"toolchain": "two"}).json()["id"]
        asked = httpx.post(f"{url}/api/v1/runs/{run_id}/pause")
        assert asked.status_code == 202
        assert asked.json() == {"id": run_id, "wanted": "pause"}
        seen = []
        for line in lines:
            if line.startswith("data:") and run_id in line:
                seen.append(json.loads(line[5:])["status"])
                if "paused" in seen:
                    break
        assert seen[-1] == "paused"
        assert httpx.get(f"{url}/api/v1/runs/{run_id}").json()["status"] == "paused"
        assert "toolrun_runs_paused 1.0" in httpx.get(f"{url}/metrics").text
        # The remote CLI resumes it.
        resumed = toolrun("--remote", url, "resume", run_id)
        assert resumed.returncode == 0, resumed.stderr
        for line in lines:
            if line.startswith("data:") and run_id in line:
                seen.append(json.loads(line[5:])["status"])
                if seen[-1] == "succeeded":
                    break
    assert seen[-3:] == ["paused", "running", "succeeded"]
    events = httpx.get(f"{url}/api/v1/runs/{run_id}/events?follow=false").text
    assert "event: run_paused" in events and "event: run_resumed" in events
    ended = httpx.post(f"{url}/api/v1/runs/{run_id}/pause")
    assert (ended.status_code, ended.json()["error"]) == (409, "finished")
    bad = httpx.post(f"{url}/api/v1/runs/{run_id}/pause?now=maybe")
    assert (bad.status_code, bad.json()["field"]) == (400, "now")


def test_p_in_the_run_view_pauses_and_resumes(probe: Path, toolrun_home: Path) -> None:
    from tui_run_test import prepare, until

    from toolrun.tui.run_app import EngineRun, RunApp
    from toolrun.tui.step_table import StepTable

    engine, handle = prepare(toolrun_home, probe, TWO_STEPS)

    async def scenario() -> None:
        app = RunApp(EngineRun(engine, handle))
        async with app.run_test(size=(100, 30)) as pilot:
            await until(lambda: app.status == "running", pilot)
            await pilot.press("p")
            await until(lambda: app.status == "paused", pilot)
            steps = app.query_one(StepTable).steps
            await until(lambda: steps["first"].status == "succeeded", pilot)
            await pilot.pause(0.5)
            assert steps["second"].status == "pending"
            await pilot.press("p")
            await until(lambda: app.final is not None, pilot)
            assert app.final is not None and app.final.status == "succeeded"
            await pilot.press("q")

    asyncio.run(scenario())
