"""The cluster's costs, each beside its floor from the same run (docs/benchmarks.md):

- dispatch: a one-step run submitted over HTTP and waited for, on a daemon with one worker,
  beside the same run on a daemon that runs it itself, and beside Dask's own round trip
  (``client.submit`` of a function that returns at once) on the same scheduler;
- streaming: a step printing 200,000 lines, through a worker and run locally;
- spread: 400 steps of 0.2 s over three workers of two slots, beside the ideal
  (400 x 0.2 / 6 = 13.3 s), the same on a local daemon running six at once, and the floor:
  the same 400 processes started six at a time by a thread pool, with no toolrun at all;
- loss: a worker killed with SIGKILL mid-step, to the attempt ended ``worker_lost``.

Everything on 127.0.0.1. ``python benchmarks/cluster.py [--quick]``.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
from common import PYTHON, environment, machine, write_tool

PROBE = Path(__file__).resolve().parent.parent / "tests" / "tools" / "probe.py"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Process:
    """A toolrun subprocess whose stderr is read until a line says it is ready."""

    def __init__(self, argv: list[str], env: dict[str, str], cwd: Path, ready: str) -> None:
        self.process = subprocess.Popen(
            [PYTHON, "-m", "toolrun", *argv],
            env=env,
            cwd=cwd,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.url = ""
        done = threading.Event()

        def read() -> None:
            assert self.process.stderr is not None
            for line in self.process.stderr:
                if ready in line:
                    if line.startswith("{"):
                        self.url = str(json.loads(line).get("url", ""))
                    done.set()
            done.set()

        threading.Thread(target=read, daemon=True).start()
        if not done.wait(60) or self.process.poll() is not None:
            self.process.kill()
            raise SystemExit(f"{argv[0]} did not start")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()


class Setup:
    def __init__(self, root: Path, *, cluster: bool, parallel: int = 64) -> None:
        self.root = root
        self.env = environment(root / ("daemon-home" if cluster else "local-home"))
        self.port = free_port()
        self.address = f"tcp://127.0.0.1:{self.port}"
        args = ["daemon", "-p", "0", "--max-parallel", str(parallel), "--queue", "1000"]
        if cluster:
            args += ["--cluster", "--cluster-port", str(self.port)]
        self.daemon = Process(args, self.env, root, '"listening"')
        self.http = httpx.Client(base_url=self.daemon.url, timeout=120)
        self.workers: dict[str, Process] = {}

    def worker(self, name: str, slots: int = 1) -> Process:
        home = self.root / f"worker-{name}"
        env = environment(home)
        argv = ["worker", self.address, "--name", name, "--slots", str(slots)]
        started = Process(argv, env, self.root, f"worker {name} joined")
        self.workers[name] = started
        deadline = time.monotonic() + 30
        while name not in {w["name"] for w in self.http.get("/api/v1/workers").json()["workers"]}:
            if time.monotonic() > deadline:
                raise SystemExit(f"worker {name} never listed")
            time.sleep(0.05)
        return started

    def start(self, args: list[str]) -> str:
        answer = self.http.post("/api/v1/runs", json={"cmd": "probe", "args": args})
        answer.raise_for_status()
        return str(answer.json()["id"])

    def wait(self, run_id: str) -> dict[str, Any]:
        while True:
            run: dict[str, Any] = self.http.get(f"/api/v1/runs/{run_id}").json()
            if run["status"] not in ("queued", "running"):
                return run
            time.sleep(0.01)

    def timed(self, args: list[str], *, lines: int | None = None) -> float:
        started = time.perf_counter()
        run = self.wait(self.start(args))
        spent = time.perf_counter() - started
        assert run["status"] == "succeeded", run
        if lines is not None:
            log = self.http.get(f"/api/v1/runs/{run['id']}/log").text.splitlines()
            assert len(log) == lines, f"{len(log)} lines of {lines}"
        return spent

    def many(self, count: int, args: list[str]) -> tuple[float, list[dict[str, Any]]]:
        started = time.perf_counter()
        ids = [self.start(args) for _ in range(count)]
        runs = [self.wait(run_id) for run_id in ids]
        failed = [r for r in runs if r["status"] != "succeeded"]
        assert not failed, [(r["id"], r["status"], r.get("steps")) for r in failed[:3]]
        return time.perf_counter() - started, runs

    def close(self) -> None:
        for worker in self.workers.values():
            worker.stop()
        self.http.close()
        self.daemon.stop()


def dask_round_trip(address: str, count: int) -> list[float]:
    from distributed import Client

    with Client(address, timeout=30) as client:
        samples = []
        for n in range(count):
            started = time.perf_counter()
            client.submit(abs, -n, pure=False).result()
            samples.append(time.perf_counter() - started)
    return samples


def bare(count: int, at_once: int) -> float:
    """The floor: the same processes, started by the simplest program that can."""
    from concurrent.futures import ThreadPoolExecutor

    argv = [PYTHON, str(PROBE), "sleep", "0.2"]
    started = time.perf_counter()
    with ThreadPoolExecutor(at_once) as pool:
        list(
            pool.map(
                lambda _: subprocess.run(argv, check=True, stdout=subprocess.DEVNULL), range(count)
            )
        )
    return time.perf_counter() - started


def p(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="fewer samples, a smaller spread")
    options = parser.parse_args()
    count = 10 if options.quick else 40
    steps = 60 if options.quick else 400
    lines = 50_000 if options.quick else 200_000
    print(f"machine: {machine()}; load {os.getloadavg()[0]:.2f}")
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        write_tool(root / "registry", "probe", "1.0.0", PROBE.read_text(encoding="utf-8"))
        local = Setup(root, cluster=False, parallel=6)
        cluster = Setup(root, cluster=True)
        try:
            cluster.worker("w1")
            for setup in (local, cluster):
                setup.timed(["echo", "warm"])  # the tool installed, the code paths warm
            here = [local.timed(["echo", "hi"]) for _ in range(count)]
            there = [cluster.timed(["echo", "hi"]) for _ in range(count)]
            floor = dask_round_trip(cluster.address, count)
            print(
                f"dispatch, one-step run over HTTP (ms, p50/p99 of {count}): "
                f"cluster {p(there, 0.5):.0f}/{p(there, 0.99):.0f}, "
                f"local daemon {p(here, 0.5):.0f}/{p(here, 0.99):.0f}, "
                f"Dask's own round trip {p(floor, 0.5):.1f}/{p(floor, 0.99):.1f}"
            )
            local_lines = local.timed(["lines", str(lines)], lines=lines)
            cluster_lines = cluster.timed(["lines", str(lines)], lines=lines)
            print(
                f"streaming {lines} lines: cluster {cluster_lines:.2f} s "
                f"({lines / cluster_lines:,.0f} lines/s), local daemon {local_lines:.2f} s "
                f"({lines / local_lines:,.0f} lines/s)"
            )
            for name in ("w2", "w3", "w4"):
                cluster.worker(name, slots=2)
            cluster.workers.pop("w1").stop()
            time.sleep(1)  # w1 gone from the scheduler's view too
            spent, runs = cluster.many(steps, ["sleep", "0.2"])
            floor_local, _ = local.many(steps, ["sleep", "0.2"])
            floor_bare = bare(steps, 6)
            share = {
                name: sum(r["steps"][0]["worker"] == name for r in runs)
                for name in ("w2", "w3", "w4")
            }
            ideal = steps * 0.2 / 6
            print(
                f"spread {steps} x 0.2 s over 3 workers x 2 slots: {spent:.1f} s "
                f"({spent / ideal:.2f}x the ideal {ideal:.1f} s); per worker {share}; "
                f"a local daemon running 6 at once {floor_local:.1f} s "
                f"({floor_local / ideal:.2f}x); bare processes 6 at a time {floor_bare:.1f} s "
                f"({floor_bare / ideal:.2f}x)"
            )
            for name in ("w2", "w3", "w4"):
                cluster.workers.pop(name).stop()
            for name, sig in (("w5", signal.SIGKILL), ("w6", signal.SIGSTOP)):
                victim = cluster.worker(name)
                run_id = cluster.start(["sleep", "60"])
                while cluster.http.get(f"/api/v1/runs/{run_id}").json()["status"] != "running":
                    time.sleep(0.01)
                time.sleep(0.5)
                killed = time.perf_counter()
                victim.process.send_signal(sig)
                run = cluster.wait(run_id)
                how = "killed (SIGKILL)" if sig == signal.SIGKILL else "frozen (SIGSTOP)"
                print(
                    f"loss: a worker {how} mid-step, to its attempt ended "
                    f"{run['steps'][0]['status']}: {time.perf_counter() - killed:.2f} s"
                )
                victim.process.kill()
                cluster.workers.pop(name)
        finally:
            cluster.close()
            local.close()
    sys.stdout.flush()


if __name__ == "__main__":
    main()
