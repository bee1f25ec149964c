"""The cluster, for real: a daemon hosting a Dask scheduler (``--cluster``) and ``toolrun worker``
subprocesses, each with its own TOOLRUN_HOME, on 127.0.0.1.

One daemon and two workers serve the module (they take seconds to start); the tests that
lose or spoil a worker start their own beside them, with a label no other test asks for.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import PROBE, REPO, DaemonProcess, run_toolrun, write_tool

ACTIVE = ("queued", "running")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class WorkerProcess:
    """A real ``toolrun worker`` subprocess; started, it has joined the scheduler."""

    def __init__(
        self, address: str, home: Path, name: str, *args: str, max_file: int | None = None
    ) -> None:
        """``max_file``: no file it writes may grow past this (RLIMIT_FSIZE): a full disk."""
        home.mkdir(parents=True, exist_ok=True)
        self.home = home
        self.name = name

        def limit() -> None:
            import resource

            if max_file is not None:
                resource.setrlimit(resource.RLIMIT_FSIZE, (max_file, max_file))

        self.process = subprocess.Popen(
            [sys.executable, "-m", "toolrun", "worker", address, "--name", name, *args],
            env={**os.environ, "TOOLRUN_HOME": str(home)},
            preexec_fn=limit if max_file is not None else None,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            encoding="utf-8",
        )
        self.lines: list[str] = []
        joined = threading.Event()

        def read() -> None:
            assert self.process.stderr is not None
            for line in self.process.stderr:
                self.lines.append(line)
                if line.startswith(f"worker {name} joined"):
                    joined.set()
            joined.set()

        threading.Thread(target=read, daemon=True).start()
        if not joined.wait(30) or self.process.poll() is not None:
            self.process.kill()
            raise AssertionError(f"worker {name} did not join:\n" + "".join(self.lines))

    def runs_dir(self, run_id: str) -> Path:
        return self.home / "worker" / "runs" / run_id

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


class Cluster:
    def __init__(self, root: Path, certs: Path | None = None) -> None:
        """``certs``: the daemon/ folder of `toolrun cluster certs`, for a cluster over TLS."""
        self.root = root
        self.port = free_port()
        self.address = f"{'tls' if certs else 'tcp'}://127.0.0.1:{self.port}"
        self.home = root / "daemon-home"
        self.home.mkdir(exist_ok=True)
        # Small, so that a test can pass it: every other workspace here is a few bytes.
        (self.home / "config.toml").write_text("cluster_workspace_cap = 65536\n")
        tls = ["--cluster-certs", str(certs)] if certs else []
        self.daemon = DaemonProcess(
            ["--cluster", "--cluster-port", str(self.port), "--cluster-wait", "3s", *tls],
            root,
            {"TOOLRUN_HOME": str(self.home)},
        )
        self.http = httpx.Client(base_url=self.daemon.url, timeout=30)
        self.workers: list[WorkerProcess] = []

    def worker(self, name: str, *args: str, max_file: int | None = None) -> WorkerProcess:
        worker = WorkerProcess(self.address, self.root / name, name, *args, max_file=max_file)
        self.workers.append(worker)
        self.wait_for_workers(lambda names: name in names)
        return worker

    @contextlib.contextmanager
    def borrowed(
        self, name: str, *args: str, max_file: int | None = None
    ) -> Iterator[WorkerProcess]:
        """A worker for one test, gone before the next (which may take any worker)."""
        worker = self.worker(name, *args, max_file=max_file)
        try:
            yield worker
        finally:
            worker.stop()
            self.wait_for_workers(lambda names: name not in names)

    def wait_for_workers(self, done: Any, seconds: float = 15) -> list[dict[str, Any]]:
        deadline = time.monotonic() + seconds
        while True:
            found = self.http.get("/api/v1/workers").json()["workers"]
            if done({w["name"] for w in found}):
                return list(found)
            if time.monotonic() > deadline:
                raise AssertionError(f"workers never became as wanted: {found}")
            time.sleep(0.05)

    def start(self, toolchain: str, **body: Any) -> str:
        answer = self.http.post("/api/v1/runs", json={"toolchain": toolchain, **body})
        assert answer.status_code == 202, answer.text
        return str(answer.json()["id"])

    def wait(self, run_id: str, seconds: float = 30) -> dict[str, Any]:
        deadline = time.monotonic() + seconds
        while True:
            run: dict[str, Any] = self.http.get(f"/api/v1/runs/{run_id}").json()
            if run["status"] not in ("queued", "running"):
                return run
            if time.monotonic() > deadline:
                raise AssertionError(f"run {run_id} still {run['status']}: {run}")
            time.sleep(0.05)

    def log(self, run_id: str, step: str) -> list[str]:
        answer = self.http.get(f"/api/v1/runs/{run_id}/log", params={"step": step})
        return answer.text.splitlines()

    def close(self) -> None:
        for worker in self.workers:
            worker.stop()
        self.http.close()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.daemon.stop(timeout=15)


TOOLCHAINS = {
    # Each step says where it ran; the toolchain names the labels it needs.
    "routed": "toolchain:\n"
    "  - on-gpu: {cmd: probe, args: [env, TOOLRUN_WORKER], runs_on: {gpu: 'yes'}}\n"
    "  - in-zone-a: {cmd: probe, args: [env, TOOLRUN_WORKER], runs_on: {zone: a}}\n",
    "nap": "runs_on: {pool: main}\ntoolchain:\n  - nap: {cmd: probe, args: [sleep, '0.6']}\n",
    "tree": "runs_on: {zone: a}\ntoolchain:\n  - tree: {cmd: probe, args: [tree, pids]}\n",
    "drip": "runs_on: {pool: loss}\n"
    "toolchain:\n  - drip: {cmd: probe, args: [drip, '40', '0.05'], retries: 1}\n",
    "drip-once": "runs_on: {pool: once}\n"
    "toolchain:\n  - drip: {cmd: probe, args: [drip, '40', '0.05']}\n",
    "spoiled": "runs_on: {pool: spoiled}\ntoolchain:\n  - s: {cmd: probe, args: [echo, hi]}\n",
    "nowhere": "toolchain:\n  - s: {cmd: probe, args: [echo, hi], runs_on: {gpu: none}}\n",
    "typo": "toolchain:\n  - s: {cmd: probe, args: [echo, hi], runs_on: {os: winodws}}\n",
    "hold": "runs_on: {pool: one}\ntoolchain:\n  - hold: {cmd: probe, args: [sleep, '3']}\n",
    "quick": "runs_on: {pool: one}\ntoolchain:\n  - quick: {cmd: probe, args: [echo, hi]}\n",
    # Made on wa (zone a), read and added to on wb (gpu), read back on wa.
    "carry": "runs_on: {zone: a}\ntoolchain:\n"
    "  - make: {cmd: probe, args: [write, tables/d01.txt, from-wa]}\n"
    "  - export: {cmd: probe, args: [read, tables/d01.txt], runs_on: {gpu: 'yes'}}\n"
    "  - mark: {cmd: probe, args: [write, out/result.txt, from-wb], runs_on: {gpu: 'yes'}}\n"
    "  - check: {cmd: probe, args: [read, out/result.txt]}\n",
    "too-big": "runs_on: {zone: a}\ntoolchain:\n"
    f"  - make: {{cmd: probe, args: [write, big.txt, {'x' * 70000}]}}\n"
    "  - export: {cmd: probe, args: [read, big.txt], runs_on: {gpu: 'yes'}}\n",
    "flood": "runs_on: {pool: full}\n"
    "toolchain:\n  - flood: {cmd: probe, args: [lines, '200000']}\n",
    "many": "runs_on: {pool: main}\ntoolchain:\n  - lines: {cmd: probe, args: [lines, '20000']}\n",
    # A WASM step on a worker: the module installed there, the workspace carried to it.
    "wasm": "runs_on: {zone: a}\ntoolchain:\n"
    "  - make: {cmd: probe, args: [write, tables/d01.txt, one]}\n"
    "  - count: {cmd: linecount, args: [tables/d01.txt], runs_on: {gpu: 'yes'}}\n",
    "two-part": "runs_on: {pool: main}\ntoolchain:\n"
    "  - first: {cmd: probe, args: [sleep, '0.5']}\n"
    "  - second: {cmd: probe, args: [echo, hi], needs: [first]}\n",
}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    root = tmp_path_factory.mktemp("cluster")
    write_tool(root / "registry", "probe", "1.0.0", script=PROBE.read_text(encoding="utf-8"))
    shutil.copytree(REPO / "registry" / "linecount", root / "registry" / "linecount")
    (root / "toolchains").mkdir()
    for name, text in TOOLCHAINS.items():
        (root / "toolchains" / f"{name}.yaml").write_text(text, encoding="utf-8")
    started = Cluster(root)
    try:
        started.worker("wa", "--label", "zone=a", "--label", "pool=main", "--slots", "2")
        started.worker("wb", "--label", "gpu=yes", "--label", "pool=main", "--slots", "2")
        yield started
    finally:
        started.close()


def test_a_step_runs_where_its_selector_says_and_is_recorded_there(cluster: Cluster) -> None:
    run = cluster.wait(cluster.start("routed"))
    assert run["status"] == "succeeded", run
    steps = {step["id"]: step for step in run["steps"]}
    assert steps["on-gpu"]["worker"] == "wb"
    assert steps["in-zone-a"]["worker"] == "wa"
    assert cluster.log(run["id"], "on-gpu") == ["TOOLRUN_WORKER=wb"]
    assert cluster.log(run["id"], "in-zone-a") == ["TOOLRUN_WORKER=wa"]
    # The tool was not on either worker: each installed it from the daemon's /registry/,
    # the same files (digest) the daemon planned.
    for worker in cluster.workers[:2]:
        receipt = worker.home / "tools" / "probe" / "1.0.0" / ".toolrun-receipt.json"
        assert "/registry/" in json.loads(receipt.read_text(encoding="utf-8"))["source"]
    # ... and the CLI says the same: history --worker, workers.
    env = {"TOOLRUN_HOME": str(cluster.home), "TOOLRUN_REMOTE": cluster.daemon.url}
    listed = run_toolrun("history", "--worker", "wb", "--json", env=env)
    assert run["id"] in {r["id"] for r in json.loads(listed.stdout)}, listed.stderr
    local = run_toolrun("history", "--worker", "wa", "--json", env={**env, "TOOLRUN_REMOTE": ""})
    assert run["id"] in {r["id"] for r in json.loads(local.stdout)}, local.stderr
    none = run_toolrun("history", "--worker", "nobody", "--json", env=env)
    assert json.loads(none.stdout) == []
    workers = run_toolrun("workers", "--json", env=env)
    found = {w["name"]: w for w in json.loads(workers.stdout)["workers"]}
    assert found["wa"]["labels"]["zone"] == "a" and found["wa"]["slots"] == 2
    assert found["wb"]["labels"]["os"] == "linux" and found["wb"]["heartbeat_age"] < 10
    table = run_toolrun("workers", env=env)
    assert "gpu=yes" in table.stdout and "wa" in table.stdout


def test_a_wasm_step_runs_on_a_worker_in_its_sandbox(cluster: Cluster) -> None:
    run = cluster.wait(cluster.start("wasm"))
    steps = {step["id"]: step for step in run["steps"]}
    assert steps["count"]["worker"] == "wb" and steps["count"]["exit_code"] == 0, run
    assert steps["count"]["outputs"] == {"total": "1", "files": "1"}
    assert cluster.log(run["id"], "count") == ["tables/d01.txt: 1 lines", "total: 1 lines"]


def test_parallel_runs_spread_over_the_workers(cluster: Cluster) -> None:
    ids = [cluster.start("nap") for _ in range(4)]
    runs = [cluster.wait(run_id) for run_id in ids]
    assert all(run["status"] == "succeeded" for run in runs), runs
    used = {run["steps"][0]["worker"] for run in runs}
    assert used == {"wa", "wb"}
    # Four 0.6 s steps on four slots: together, not one after another.
    started = min(run["started_at"] for run in runs)
    finished = max(run["finished_at"] for run in runs)
    assert finished - started < 2.2


def test_cancel_ends_the_whole_tree_on_the_worker(cluster: Cluster) -> None:
    import psutil

    run_id = cluster.start("tree")
    pid_file = cluster.workers[0].runs_dir(run_id) / "work" / "pids"
    deadline = time.monotonic() + 20
    while not (pid_file.is_file() and len(pid_file.read_text().split()) >= 3):
        assert time.monotonic() < deadline, "the tree never started"
        time.sleep(0.05)
    pids = [int(pid) for pid in pid_file.read_text().split()]
    assert all(psutil.pid_exists(pid) for pid in pids)
    assert cluster.http.post(f"/api/v1/runs/{run_id}/cancel").status_code == 202
    run = cluster.wait(run_id)
    assert run["status"] == "cancelled", run
    deadline = time.monotonic() + 10
    while any(_alive(pid) for pid in pids):
        assert time.monotonic() < deadline, f"left running: {[p for p in pids if _alive(p)]}"
        time.sleep(0.05)


def _alive(pid: int) -> bool:
    import psutil

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_a_worker_killed_mid_step_is_lost_and_the_retry_runs_elsewhere(
    cluster: Cluster,
) -> None:
    # Two workers qualify; the one the first attempt lands on is killed as it prints.
    pair = [cluster.worker(name, "--label", "pool=loss") for name in ("loss-1", "loss-2")]
    run_id = cluster.start("drip")
    first = until_printing(pair, run_id, "drip", "the first attempt never printed")
    second = next(w for w in pair if w is not first)
    killed = time.monotonic()
    first.process.send_signal(signal.SIGKILL)
    first.process.wait()
    run = cluster.wait(run_id)
    assert run["status"] == "succeeded", run
    step = run["steps"][0]
    assert step["attempts"] == 2 and step["workers"] == [first.name, second.name]
    assert time.monotonic() - killed < 10
    # The lost attempt is said so; the second one's lines are all there, once each, in order.
    events = cluster.http.get(f"/api/v1/runs/{run_id}/events", params={"follow": "false"})
    ended = [
        json.loads(line.removeprefix("data: "))
        for line in events.text.splitlines()
        if line.startswith("data: ") and '"step_finished"' in line
    ]
    assert [e["status"] for e in ended] == ["worker_lost", "succeeded"]
    assert first.name in ended[0]["error"]
    lines = [line for line in cluster.log(run_id, "drip") if line.startswith("drip ")]
    second_attempt = lines[len(lines) - lines[::-1].index("drip 0") - 1 :]
    assert second_attempt == [f"drip {n}" for n in range(40)]
    # The worker that finished it kept its own copy of the log: the daemon's, line for line.
    copy = second.runs_dir(run_id) / "drip.2.log.jsonl"
    kept = [line for row in copy.read_text().splitlines() for line in json.loads(row)["lines"]]
    assert kept == second_attempt
    metrics = cluster.http.get("/metrics").text
    assert "toolrun_workers_lost_total 1.0" in metrics
    assert f'toolrun_worker_slots{{worker="{second.name}"}} 1.0' in metrics


def test_a_run_whose_worker_is_lost_ends_at_once_saying_its_workspace_went_too(
    cluster: Cluster,
) -> None:
    lone = cluster.worker("lone", "--label", "pool=once")
    run_id = cluster.start("drip-once")
    until_printing([lone], run_id, "drip", "the attempt never printed")
    killed = time.monotonic()
    lone.process.send_signal(signal.SIGKILL)
    lone.process.wait()
    run = cluster.wait(run_id)
    assert time.monotonic() - killed < 10, "the run waited for a worker that is gone"
    assert run["status"] == "failed" and run["steps"][0]["status"] == "worker_lost"
    events = cluster.http.get(f"/api/v1/runs/{run_id}/events", params={"follow": "false"})
    assert "the final workspace was lost with worker lone" in events.text


def until_printing(
    workers: list[WorkerProcess], run_id: str, step: str, what: str
) -> WorkerProcess:
    """The worker whose copy of the step's first attempt has its first lines."""
    deadline = time.monotonic() + 20
    while True:
        for worker in workers:
            copy = worker.runs_dir(run_id) / f"{step}.1.log.jsonl"
            if copy.is_file() and copy.stat().st_size > 0:
                return worker
        assert time.monotonic() < deadline, what
        time.sleep(0.02)


def test_the_workspace_goes_where_a_step_goes_and_comes_back(cluster: Cluster) -> None:
    run = cluster.wait(cluster.start("carry"))
    assert run["status"] == "succeeded", run
    workers = {step["id"]: step["worker"] for step in run["steps"]}
    assert workers == {"make": "wa", "export": "wb", "mark": "wb", "check": "wa"}
    assert cluster.log(run["id"], "export") == ["from-wa"]
    assert cluster.log(run["id"], "check") == ["from-wb"]
    # The home keeps the whole workspace; the daemon has it back for the artifacts.
    home = cluster.workers[0].runs_dir(run["id"]) / "work"
    assert (home / "out" / "result.txt").read_text() == "from-wb"
    artifacts = cluster.http.get(f"/api/v1/runs/{run['id']}/artifacts").json()["files"]
    assert {f["path"]: f["size"] for f in artifacts} == {
        "out/result.txt": 7,
        "tables/d01.txt": 7,
    }
    got = cluster.http.get(f"/api/v1/runs/{run['id']}/artifacts/tables/d01.txt")
    assert got.text == "from-wa"


def test_a_workspace_over_the_cap_stays_and_the_step_says_why(cluster: Cluster) -> None:
    run = cluster.wait(cluster.start("too-big"))
    assert run["status"] == "failed", run
    error = run["steps"][1]["error"]
    assert "cannot start: the workspace on wa: the workspace holds 68.4 KB" in error, error
    assert "over the 64 KB a cluster carries (config key cluster_workspace_cap)" in error
    events = cluster.http.get(f"/api/v1/runs/{run['id']}/events", params={"follow": "false"})
    assert "the final workspace stays on worker wa" in events.text
    assert (cluster.workers[0].runs_dir(run["id"]) / "work" / "big.txt").stat().st_size == 70000


def test_a_full_disk_on_the_worker_stops_the_step_and_the_daemon_keeps_its_lines(
    cluster: Cluster,
) -> None:
    with cluster.borrowed("full", "--label", "pool=full", max_file=256 * 1024):
        run = cluster.wait(cluster.start("flood"))
    assert run["status"] == "failed", run
    error = run["steps"][0]["error"]
    assert "stopped on full: cannot write" in error and "File too large" in error, error
    # Every line that reached the daemon is there, once and in order, from the first on (the
    # last one as far as the tool got to write it before it was stopped).
    *whole, last = cluster.log(run["id"], "flood")
    assert 1000 < len(whole) < 200_000
    assert whole == [f"line {n} of the probe's output" for n in range(len(whole))]
    assert f"line {len(whole)} of the probe's output".startswith(last)


def test_a_tool_that_differs_from_the_daemons_is_refused(cluster: Cluster) -> None:
    own = cluster.root / "spoiled-registry"
    write_tool(own, "probe", "1.0.0", script="print('not the daemon probe')\n")
    with cluster.borrowed("spoiled", "--label", "pool=spoiled", "--registry", str(own)):
        run = cluster.wait(cluster.start("spoiled"))
    assert run["status"] == "failed", run
    error = run["steps"][0]["error"]
    assert "is not the daemon's" in error and "refused" in error, error


def test_a_high_priority_run_overtakes_queued_normal_ones(cluster: Cluster) -> None:
    """The runs wait in Dask, not in the daemon (64 run slots by default on a cluster): Dask's
    own task priority, set from the run's, decides which the one free slot takes next."""
    with cluster.borrowed("solo", "--label", "pool=one", "--slots", "1") as solo:
        holding = cluster.start("hold")
        until_printing([solo], holding, "hold", "the first run never started")
        ids = [
            cluster.start("quick"),
            cluster.start("quick"),
            cluster.start("quick", priority="high"),
        ]
        runs = [cluster.wait(run_id) for run_id in [holding, *ids]]
    assert all(run["status"] == "succeeded" for run in runs), runs
    assert max(run["created_at"] for run in runs[1:]) < runs[0]["finished_at"] - 1, (
        "the machine was too slow: the first run ended before the others were queued"
    )
    ended = {run["id"]: run["steps"][0]["finished_at"] for run in runs}
    assert sorted(ended, key=ended.__getitem__) == [holding, ids[2], ids[0], ids[1]], (ids, ended)


def test_a_paused_cluster_run_starts_no_further_step_and_now_is_refused(
    cluster: Cluster,
) -> None:
    run_id = cluster.start("two-part")
    frozen = cluster.http.post(f"/api/v1/runs/{run_id}/pause", params={"now": "true"})
    assert (frozen.status_code, frozen.json()["error"]) == (409, "cannot_freeze")
    assert "workers, which toolrun does not freeze" in frozen.json()["message"]
    assert cluster.http.post(f"/api/v1/runs/{run_id}/pause").status_code == 202
    deadline = time.monotonic() + 20
    while True:
        run = cluster.http.get(f"/api/v1/runs/{run_id}").json()
        if run["status"] == "paused" and run["steps"][0]["status"] == "succeeded":
            break
        assert time.monotonic() < deadline, run
        time.sleep(0.05)
    time.sleep(1)
    run = cluster.http.get(f"/api/v1/runs/{run_id}").json()
    assert run["steps"][1]["status"] == "pending"
    assert cluster.http.post(f"/api/v1/runs/{run_id}/resume").status_code == 202
    deadline = time.monotonic() + 20
    while run["status"] in ("running", "paused"):
        assert time.monotonic() < deadline, run
        time.sleep(0.05)
        run = cluster.http.get(f"/api/v1/runs/{run_id}").json()
    assert run["status"] == "succeeded"
    assert run["steps"][1]["worker"] in ("wa", "wb")


def test_no_worker_for_a_selector_waits_then_fails_saying_why(cluster: Cluster) -> None:
    run = cluster.wait(cluster.start("nowhere"))
    assert run["status"] == "failed"
    error = run["steps"][0]["error"]
    assert "no worker for step 's' joined within 3s" in error, error
    assert "gpu=none" in error and "wb (gpu=none unmet)" in error


def test_a_selector_no_worker_could_ever_meet_is_refused_at_submit(cluster: Cluster) -> None:
    answer = cluster.http.post("/api/v1/runs", json={"toolchain": "typo"})
    assert answer.status_code == 409, answer.text
    assert "os=winodws: no worker can have it" in answer.json()["message"]


def test_the_seed_endpoint_runs_on_a_worker(cluster: Cluster) -> None:
    answer = cluster.http.get("/cmd/probe/env/TOOLRUN_WORKER")
    assert answer.status_code == 200, answer.text
    worker = answer.text.strip().removeprefix("TOOLRUN_WORKER=")
    assert worker in {w.name for w in cluster.workers}, answer.text
    run = cluster.http.get(f"/api/v1/runs/{answer.headers['x-toolrun-run-id']}").json()
    assert run["steps"][0]["worker"] == worker


def test_many_lines_reach_the_daemon_in_order(cluster: Cluster) -> None:
    run = cluster.wait(cluster.start("many"))
    assert run["status"] == "succeeded", run
    lines = cluster.log(run["id"], "lines")
    assert lines == [f"line {n} of the probe's output" for n in range(20000)]


def test_over_tls_only_a_worker_with_the_clusters_certificate_joins(tmp_path: Path) -> None:
    import ssl

    made = run_toolrun("cluster", "certs", str(tmp_path / "certs"), "--worker", "good")
    assert made.returncode == 0, made.stderr
    run_toolrun("cluster", "certs", str(tmp_path / "other"), "--worker", "intruder")
    write_tool(tmp_path / "registry", "probe", "1.0.0", script=PROBE.read_text(encoding="utf-8"))
    (tmp_path / "toolchains").mkdir()
    (tmp_path / "toolchains" / "hello.yaml").write_text(TOOLCHAINS["routed"], encoding="utf-8")
    cluster = Cluster(tmp_path, certs=tmp_path / "certs" / "daemon")
    try:
        good = cluster.worker(
            "good",
            "--label",
            "gpu=yes",
            "--label",
            "zone=a",
            "--certs",
            str(tmp_path / "certs" / "workers" / "good"),
        )
        assert good.lines[0].startswith(f"worker good joined {cluster.address} as tls://")
        run = cluster.wait(cluster.start("hello"))
        assert run["status"] == "succeeded", run
        assert {step["worker"] for step in run["steps"]} == {"good"}

        env = {"TOOLRUN_HOME": str(tmp_path / "intruder")}
        other_ca = run_toolrun(
            "worker",
            cluster.address,
            "--certs",
            str(tmp_path / "other" / "workers" / "intruder"),
            "--timeout",
            "3s",
            env=env,
        )
        assert other_ca.returncode == 3, other_ca.stderr
        assert "do not trust each other (certificate verify failed)" in other_ca.stderr
        # The cluster's CA beside a certificate of another: refused before it tries.
        mixed = tmp_path / "mixed"
        mixed.mkdir()
        for name, source in [("ca.crt", "certs"), ("worker.crt", "other"), ("worker.key", "other")]:
            folder = tmp_path / source / "workers" / ("good" if source == "certs" else "intruder")
            (mixed / name).write_bytes((folder / name).read_bytes())
        forged = run_toolrun("worker", cluster.address, "--certs", str(mixed), env=env)
        assert forged.returncode == 3 and "worker.crt is not signed by" in forged.stderr
        plain = run_toolrun("worker", cluster.address, env=env)
        assert plain.returncode == 2 and "tls:// needs --certs DIR" in plain.stderr
        # A client with no certificate at all: the scheduler ends the handshake.
        context = ssl.create_default_context(cafile=str(tmp_path / "certs" / "ca.crt"))
        context.check_hostname = False
        with (
            pytest.raises(ssl.SSLError),
            socket.create_connection(("127.0.0.1", cluster.port), timeout=5) as raw,
            context.wrap_socket(raw) as tls,
        ):
            tls.settimeout(5)
            tls.recv(1)
        refusals = [
            r for r in cluster.daemon.log if "TLS handshake failed" in str(r.get("message"))
        ]
        assert refusals and all(r["level"] == "warning" for r in refusals)
        assert [w["name"] for w in cluster.http.get("/api/v1/workers").json()["workers"]] == [
            "good"
        ]
    finally:
        cluster.close()


def test_a_scheduler_lost_mid_step_ends_the_attempt_and_the_tree_on_the_worker(
    tmp_path: Path,
) -> None:
    """A daemon joined to a scheduler elsewhere (--cluster ADDRESS) that dies: the attempt
    ends saying so, the worker ends its step's tree and exits 3, new runs are refused."""
    import psutil

    port = free_port()
    scheduler = subprocess.Popen(
        [
            *(sys.executable, "-m", "distributed.cli.dask_scheduler"),
            *("--host", "127.0.0.1", "--port", str(port), "--no-dashboard"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    write_tool(tmp_path / "registry", "probe", "1.0.0", script=PROBE.read_text(encoding="utf-8"))
    (tmp_path / "toolchains").mkdir()
    tree = "toolchain:\n  - tree: {cmd: probe, args: [tree, pids]}\n"
    (tmp_path / "toolchains" / "tree.yaml").write_text(tree, encoding="utf-8")
    address = f"tcp://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:  # the scheduler takes a moment to listen
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
                break
            assert time.monotonic() < deadline, "the scheduler never listened"
            time.sleep(0.1)
        daemon = DaemonProcess(
            ["--cluster", address], tmp_path, {"TOOLRUN_HOME": str(tmp_path / "daemon-home")}
        )
        http = httpx.Client(base_url=daemon.url, timeout=30)
        worker = WorkerProcess(address, tmp_path / "w", "w", "--timeout", "3s")
        answer = http.post("/api/v1/runs", json={"toolchain": "tree"})
        run_id = answer.json()["id"]
        pid_file = worker.runs_dir(run_id) / "work" / "pids"
        while not (pid_file.is_file() and len(pid_file.read_text().split()) >= 3):
            assert time.monotonic() < deadline, "the tree never started"
            time.sleep(0.05)
        pids = [int(pid) for pid in pid_file.read_text().split()]
        assert all(psutil.pid_exists(pid) for pid in pids)
        lost = time.monotonic()
        scheduler.kill()
        while (run := http.get(f"/api/v1/runs/{run_id}").json())["status"] == "running":
            assert time.monotonic() - lost < 20, run
            time.sleep(0.1)
        assert run["status"] == "failed"
        error = run["steps"][0]["error"]
        assert f"the scheduler at {address} was lost mid-step on worker w" in error, error
        assert worker.process.wait(30) == 3
        assert "the scheduler at" in "".join(worker.lines) and "was lost" in "".join(worker.lines)
        assert not any(_alive(pid) for pid in pids), "the step's tree outlived its worker"
        # Once Dask gives up reconnecting (its connect timeout), a new run is told why.
        later = http.post("/api/v1/runs", json={"toolchain": "tree"}).json()["id"]
        while (run := http.get(f"/api/v1/runs/{later}").json())["status"] in ACTIVE:
            assert time.monotonic() - lost < 30, run
            time.sleep(0.2)
        assert "was lost and did not come back" in run["steps"][0]["error"], run
        assert http.get("/api/v1/workers").json()["workers"] == []
        http.close()
        daemon.stop(timeout=15)
    finally:
        scheduler.kill()
        scheduler.wait()


def test_worker_refuses_bad_labels_and_an_unanswering_scheduler(tmp_path: Path) -> None:
    env = {"TOOLRUN_HOME": str(tmp_path / "w")}
    bad = run_toolrun("worker", "tcp://127.0.0.1:1", "--label", "gpu", env=env)
    assert bad.returncode == 2 and "--label" in bad.stderr and "KEY=VALUE" in bad.stderr
    os_label = run_toolrun("worker", "tcp://127.0.0.1:1", "--label", "os=windows", env=env)
    assert os_label.returncode == 2 and "this machine is os=linux" in os_label.stderr
    remote = run_toolrun("worker", "tcp://10.1.2.3:8786", env=env)
    assert remote.returncode == 2 and "refusing plain tcp://" in remote.stderr
    started = time.monotonic()
    gone = run_toolrun("worker", f"tcp://127.0.0.1:{free_port()}", "--timeout", "2s", env=env)
    assert gone.returncode == 3, gone.stderr
    assert "no scheduler answered" in gone.stderr
    assert time.monotonic() - started < 15


def test_local_runs_never_import_dask(tmp_path: Path, probe: Path, workdir: Path) -> None:
    code = (
        "import sys\n"
        "from toolrun.__main__ import main\n"
        "code = main(['run', 'p'])\n"
        "print('dask' in sys.modules or 'distributed' in sys.modules, code)\n"
    )
    (workdir / "toolchains").mkdir()
    (workdir / "toolchains" / "p.yaml").write_text(
        "toolchain:\n  - a: {cmd: probe, args: [echo, hi]}\n", encoding="utf-8"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=workdir, capture_output=True, text=True, timeout=60
    )
    assert result.stdout.strip().splitlines()[-1] == "False 0", result.stderr


def test_the_scheduler_keeps_few_output_batches() -> None:
    """Dask keeps the last N messages of each event topic in the scheduler for ever; output
    batches are up to 256 KiB, so the daemon bounds N (its default, 1,000, meant 256 MB)."""
    import dask

    from toolrun.cluster.hosting import TOPIC_HISTORY, configure_dask
    from toolrun.cluster.worker_task import BATCH_BYTES

    configure_dask()
    assert dask.config.get("distributed.admin.low-level-log-length") == TOPIC_HISTORY
    assert TOPIC_HISTORY * BATCH_BYTES <= 16 * 1024 * 1024
