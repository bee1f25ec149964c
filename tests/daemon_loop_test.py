"""The daemon under both event loops uvicorn may pick: asyncio's own and uvloop (which uvicorn
takes whenever it is installed, as `pip install uvicorn[standard]` does)."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import httpx
import pytest
from conftest import StartDaemon, WriteToolchain

TIMEOUT = httpx.Timeout(30.0)
LOOPS = ["asyncio"] + ([] if sys.platform == "win32" else ["uvloop"])


def wait_ended(client: httpx.Client, run_id: str) -> dict[str, object]:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        run = client.get(f"/api/v1/runs/{run_id}").json()
        if run["status"] not in ("queued", "running"):
            return dict(run)
        time.sleep(0.05)
    raise AssertionError(f"run {run_id} never ended")


@pytest.mark.parametrize("loop", LOOPS)
def test_runs_stream_time_out_and_cancel_under_each_loop(
    daemon: StartDaemon, toolchain: WriteToolchain, toolrun_home: Path, loop: str
) -> None:
    toolchain(
        "pair",
        "toolchain:\n  - a: {cmd: probe, args: [echo, one]}\n"
        "  - b: {cmd: probe, args: [echo, two], needs: []}\n",
    )
    server = daemon("--loop", loop)
    with httpx.Client(base_url=server.url, timeout=TIMEOUT) as client:
        answer = client.get("/cmd/probe/lines/2000")
        assert answer.status_code == 200
        assert answer.text.count("\n") == 2000
        assert wait_ended(client, answer.headers["x-toolrun-run-id"])["status"] == "succeeded"
        both = client.post("/cmd?toolchain=pair", content="")
        lines = both.text.splitlines()
        assert "a | one" in lines and "b | two" in lines
        timed = client.post(
            "/api/v1/runs", json={"cmd": "probe", "args": ["sleep", "30"], "timeout": "1s"}
        ).json()
        assert wait_ended(client, timed["id"])["status"] == "timed_out"
        started = client.post(
            "/api/v1/runs", json={"cmd": "probe", "args": ["tree", "pids"]}
        ).json()
        assert started["status"] in ("queued", "running")
        pids = toolrun_home / "runs" / started["id"] / "work" / "pids"
        deadline = time.monotonic() + 20
        while not pids.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert client.post(f"/api/v1/runs/{started['id']}/cancel").status_code == 202
        assert wait_ended(client, started["id"])["status"] == "cancelled"
    import psutil

    for pid in map(int, pids.read_text().split()):
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    assert not [line for line in server.raw if "Unknown child process" in line]
