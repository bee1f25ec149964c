"""The HTTP daemon under load (issue 5).

1. Run rate: `GET /cmd/nothing` from 16 concurrent clients for 10 s, where `nothing` is a
   system tool wrapping `true`. Targets: at least 400 runs/s, p99 latency under 150 ms, and
   every run recorded (each response's run id is looked up in the history database once the
   daemon is idle: all must be there, `succeeded`). Beside it, in the same run: the rate at
   which a bare asyncio loop spawns the same `true` (16 at once, with pipes and a new session,
   as the engine does), the same load with a do-nothing Python tool, the rate of the load
   generator itself against `/healthz` (the raw-socket client used for everything here, and
   httpx.AsyncClient for comparison), and single requests one at a time on one connection.
2. Submit latency: `GET /cmd/nothing?onlyid=true` sent open-loop at 100 a second for 10 s
   (one every 10 ms whatever the answers; a request's latency runs from the moment it was
   due). Target: p99 under 20 ms. The runs go on in the daemon meanwhile. The same at 20 a
   second is printed for reference.
3. Fan-out: 500 SSE clients (`/api/v1/runs/<id>/events`, several client processes, raw
   sockets) follow one run whose tool sleeps, then prints 10,000 lines a second for 10 s, 100
   lines every 10 ms, each line carrying its sequence number and the time it was written.
   All clients connect while the tool sleeps. Every client must receive every line, in order;
   a line's latency is its arrival at the client minus its write time. Targets: p99 under
   250 ms, daemon peak RSS (VmHWM) under 300 MB.

The daemon is `toolrun daemon -p 0 --max-parallel 16 --queue 100000` in a scratch home, a
fresh one for each repetition of the rate/submit part and of the fan-out. Every measurement is
repeated (3 times by default) and the median is reported beside each repetition's figure. The
clients run on the same machine as the daemon and share its cores; their CPU time is printed.
Exits 1 when a target is missed.

With `--baseline DIR` (another commit's source tree: `git worktree add /tmp/before REV`) only
the run rate and the submit latency are measured, for this tree's daemon and that one's in
turn (`python -m toolrun daemon` from each tree's src/), `--repeats` pairs. With `--split N`
only the run rate is measured, of N daemons side by side (each with a home of its own and
16/N of the clients) and of one daemon, in turn: the ceiling of a daemon of N processes here.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from common import PYTHON, TOOLRUN, environment, machine, verdict, write_tool

CONCURRENCY = 16
MAX_PARALLEL = 16
QUEUE = 100_000
RATE_SECONDS = 10.0
PYTHON_RATE_SECONDS = 5.0
BARE_SECONDS = 5.0
SUBMIT_RATE = 100  # requests a second, open loop
SUBMIT_SECONDS = 10.0
LIGHT_RATE = 20  # the same at a fifth of the rate, for reference
FANOUT_CLIENTS = 500
FANOUT_PROCESSES = 4
LINES_PER_SECOND = 10_000
PRINT_SECONDS = 10
TOOL_SLEEP = 6.0  # the tool's sleep before printing: time for every client to connect
REPEATS = 3

TARGET_RATE = 400.0
TARGET_RATE_P99_MS = 150.0
TARGET_SUBMIT_P99_MS = 20.0
TARGET_FANOUT_P99_MS = 250.0
TARGET_RSS_MB = 300.0

DAEMON_ARGV = [TOOLRUN, "daemon"]  # an experiment may point this at another launcher
HIDE_UVLOOP: Path | None = None  # a folder whose uvloop cannot be imported, first on the path

NOTHING_TOML = """\
name = "nothing"
version = "1.0.0"
description = "does nothing: the system's true"
kind = "system"
command = ["true"]

[files]
"""
# Prints `rate` lines a second for `seconds` after sleeping `wait`: 100 lines every 10 ms, one
# write each, every line "<seq, 8 digits> <time.time() of the write>".
TICKER = """\
import os, sys, time
wait, rate, seconds = float(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
time.sleep(wait)
per = rate // 100
total = int(rate * seconds)
start = time.monotonic()
sent = tick = 0
while sent < total:
    now = time.time()
    os.write(1, "".join(f"{sent + i:08d} {now:.6f}\\n" for i in range(per)).encode())
    sent += per
    tick += 1
    delay = start + tick * 0.01 - time.monotonic()
    if delay > 0:
        time.sleep(delay)
"""


# -- the daemon ------------------------------------------------------------------------------


class Daemon:
    """`toolrun daemon` in a scratch home; its JSON log goes to a file (one line a request)."""

    def __init__(
        self, root: Path, cwd: Path, name: str, max_parallel: int, source: Path | None = None
    ) -> None:
        """``source``: another source tree's toolrun (``python -m toolrun`` from its src/)."""
        self.home = root / f"home-{name}"
        self.log = root / f"daemon-{name}.log"
        env = environment(self.home)
        launcher = DAEMON_ARGV
        if source is not None:
            env["PYTHONPATH"] = str(source / "src")
        if HIDE_UVLOOP is not None:
            # Commits before issue 11 fail every run under uvloop, which uvicorn picks when it
            # is installed and they have no --loop to refuse it: hidden, both get asyncio's.
            env["PYTHONPATH"] = os.pathsep.join(
                p for p in (str(HIDE_UVLOOP), env.get("PYTHONPATH")) if p
            )
            launcher = [PYTHON, "-m", "toolrun", "daemon"]
        argv = [*launcher, "-p", "0", "--max-parallel", str(max_parallel), "--queue", str(QUEUE)]
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                argv,
                cwd=cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=log,
            )
        self.url = self._wait_for_url()
        parts = urlsplit(self.url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.pid = self.process.pid

    def _wait_for_url(self) -> str:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the daemon exited: {self.log.read_text()[-2000:]}")
            for line in self.log.read_text(errors="replace").splitlines():
                if '"listening"' in line:
                    return str(json.loads(line)["url"])
            time.sleep(0.05)
        raise RuntimeError("the daemon did not start listening within 30 s")

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def memory_mib(self, key: str) -> float:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def runs(self) -> dict[str, str]:
        """Every run in the history database: id -> status (read in a separate connection)."""
        db = sqlite3.connect(f"file:{self.home / 'history.db'}?mode=ro", uri=True, timeout=30)
        try:
            return dict(db.execute("SELECT id, status FROM runs").fetchall())
        finally:
            db.close()

    def wait_idle(self, timeout: float = 120) -> None:
        """Until no run is queued or running, in the daemon and in the history."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            health = asyncio.run(get_once(self.host, self.port, "/healthz"))
            statuses = self.runs().values()
            busy = health.get("running", 1) + health.get("queued", 1)
            if busy == 0 and not any(s in ("queued", "running") for s in statuses):
                return
            time.sleep(0.2)
        raise RuntimeError("the daemon still has runs going")

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


# -- a small HTTP/1.1 client on raw asyncio streams ------------------------------------------


class Connection:
    """One keep-alive connection: GET, then read a Content-Length or chunked answer."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def get(self, path: str) -> tuple[int, dict[bytes, bytes], bytes]:
        reused = self.writer is not None
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None and self.writer is not None
        self.writer.write(f"GET {path} HTTP/1.1\r\nhost: {self.host}\r\n\r\n".encode())
        try:
            head = await self.reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionResetError) as exc:
            partial = isinstance(exc, asyncio.IncompleteReadError) and exc.partial
            if not reused or partial:
                raise
            # The server closed a keep-alive connection that sat idle (uvicorn: after 5 s).
            self.close()
            return await self.get(path)
        lines = head[:-4].split(b"\r\n")
        status = int(lines[0].split()[1])
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            headers[name.strip().lower()] = value.strip()
        if b"content-length" in headers:
            body = await self.reader.readexactly(int(headers[b"content-length"]))
        else:
            parts = []
            while True:
                size = int((await self.reader.readuntil(b"\r\n"))[:-2], 16)
                data = await self.reader.readexactly(size + 2)
                if size == 0:
                    break
                parts.append(data[:-2])
            body = b"".join(parts)
        if headers.get(b"connection", b"").lower() == b"close":
            self.close()
        return status, headers, body

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


async def get_once(host: str, port: int, path: str) -> Any:
    connection = Connection(host, port)
    try:
        _status, _headers, body = await connection.get(path)
    finally:
        connection.close()
    return json.loads(body)


def machine_busy_seconds() -> float:
    """CPU seconds all cores have spent busy since boot (user, nice, system, irq, softirq),
    from /proc/stat: what the daemon, its tools and the clients used between two readings."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq = map(int, fields[:7])
    return (user + nice + system + irq + softirq) / os.sysconf("SC_CLK_TCK")


def percentile(sorted_values: list[float], fraction: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, int(fraction * len(sorted_values)))
    return sorted_values[index]


async def closed_loop(
    host: str, port: int, path: str, seconds: float, workers: int = CONCURRENCY
) -> dict[str, Any]:
    """``workers`` connections, each sending its next request when the last is answered."""
    latencies: list[float] = []
    ids: list[str] = []
    failures: Counter[int] = Counter()
    deadline = time.perf_counter() + seconds

    async def worker() -> None:
        connection = Connection(host, port)
        try:
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                status, headers, _body = await connection.get(path)
                latencies.append(time.perf_counter() - started)
                if status != 200:
                    failures[status] += 1
                if b"x-toolrun-run-id" in headers:
                    ids.append(headers[b"x-toolrun-run-id"].decode())
        finally:
            connection.close()

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(workers)))
    elapsed = time.perf_counter() - started
    latencies.sort()
    return {
        "count": len(latencies),
        "rate": len(latencies) / elapsed,
        "p50": percentile(latencies, 0.50) * 1000,
        "p99": percentile(latencies, 0.99) * 1000,
        "max": latencies[-1] * 1000 if latencies else float("nan"),
        "ids": ids,
        "failures": dict(failures),
    }


async def sequential(host: str, port: int, path: str, count: int = 50) -> float:
    """Median ms of ``count`` requests one after the other on one keep-alive connection."""
    connection = Connection(host, port)
    samples = []
    try:
        for _ in range(count):
            started = time.perf_counter()
            await connection.get(path)
            samples.append(time.perf_counter() - started)
    finally:
        connection.close()
    return statistics.median(samples) * 1000


async def httpx_ceiling(url: str, seconds: float) -> float:
    import httpx

    count = 0
    deadline = time.perf_counter() + seconds
    limits = httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=60) as client:

        async def worker() -> None:
            nonlocal count
            while time.perf_counter() < deadline:
                (await client.get("/healthz")).raise_for_status()
                count += 1

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
        return count / (time.perf_counter() - started)


async def bare_spawn_rate(argv: list[str], seconds: float) -> tuple[float, float]:
    """A bare asyncio loop spawning ``program``, ``CONCURRENCY`` at a time, as the engine
    does: stdin from /dev/null, stdout and stderr piped and read to the end, a new session.
    Returns the rate and the loop's own CPU milliseconds per spawn."""
    count = 0
    deadline = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal count
        while time.perf_counter() < deadline:
            process = await asyncio.create_subprocess_exec(
                *argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,
            )
            await process.communicate()
            count += 1

    started, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    return count / (time.perf_counter() - started), (time.process_time() - cpu) / count * 1000


async def open_loop(host: str, port: int, path: str, rate: int, seconds: float) -> dict[str, Any]:
    """One request every 1/rate s whatever the answers; latency from when it was due."""
    idle: list[Connection] = []
    latencies: list[float] = []
    lateness: list[float] = []
    ids: list[str] = []
    failures: Counter[int] = Counter()
    opened = 0

    async def one(due: float) -> None:
        nonlocal opened
        lateness.append(time.perf_counter() - due)
        if idle:
            connection = idle.pop()
        else:
            connection = Connection(host, port)
            opened += 1
        status, _headers, body = await connection.get(path)
        latencies.append(time.perf_counter() - due)
        if status != 202:
            failures[status] += 1
        else:
            ids.append(body.decode())
        idle.append(connection)

    total = int(rate * seconds)
    tasks = []
    start = time.perf_counter() + 0.05
    for index in range(total):
        due = start + index / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.ensure_future(one(due)))
    await asyncio.gather(*tasks)
    for connection in idle:
        connection.close()
    latencies.sort()
    return {
        "count": len(latencies),
        "p50": percentile(latencies, 0.50) * 1000,
        "p99": percentile(latencies, 0.99) * 1000,
        "max": latencies[-1] * 1000,
        "late_max": max(lateness) * 1000,
        "connections": opened,
        "ids": ids,
        "failures": dict(failures),
    }


def check_recorded(daemon: Daemon, ids: list[str]) -> tuple[int, int]:
    """(runs answered, of those recorded as succeeded) once the daemon is idle."""
    daemon.wait_idle()
    runs = daemon.runs()
    return len(ids), sum(1 for run_id in set(ids) if runs.get(run_id) == "succeeded")


# -- the fan-out's clients (run in child processes: `daemon.py --sse-client ...`) --------------


class SSEClient(asyncio.Protocol):
    """Reads one run's Server-Sent Events over chunked HTTP and checks every output line."""

    def __init__(self, request: bytes, stats: dict[str, Any], done: asyncio.Future[None]):
        self.request = request
        self.stats = stats
        self.done = done
        self.head: bytes | None = None
        self.raw = b""  # chunked framing not yet decoded
        self.sse = b""  # decoded SSE text not yet split into events
        self.expected = 0  # the next line's seq
        self.lines = 0
        self.events = 0
        self.error: str | None = None
        self.connected: asyncio.Future[None] = done.get_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        transport.write(self.request)  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        try:
            self.receive(data)
        except Exception as exc:  # reported as the client's error
            self.fail(f"{type(exc).__name__}: {exc}")

    def receive(self, data: bytes) -> None:
        raw = self.raw + data if self.raw else data
        if self.head is None:
            end = raw.find(b"\r\n\r\n")
            if end < 0:
                self.raw = raw
                return
            self.head, raw = raw[:end], raw[end + 4 :]
            status_line = self.head.split(b"\r\n", 1)[0]
            if b" 200 " not in status_line:
                self.fail(f"answered {status_line!r}")
                return
            self.connected.set_result(None)
        # Chunked framing: <hex size>\r\n<data>\r\n ... 0\r\n\r\n. The events are read in
        # place (positions in `raw`): 500 clients receive a lot of bytes, and every copy counts
        # against the daemon, which shares the machine's two cores with them.
        position = 0
        while True:
            eol = raw.find(b"\r\n", position, position + 20)
            if eol < 0:
                break
            size = int(raw[position:eol], 16)
            if size == 0 or len(raw) < eol + 2 + size + 2:
                break
            start, end = eol + 2, eol + 2 + size
            if self.sse or raw[end - 2 : end] != b"\n\n":
                # A message split across chunks (never seen with uvicorn): join it first.
                self.sse += raw[start:end]
                cut = self.sse.rfind(b"\n\n")
                if cut >= 0:
                    buffer, self.sse = self.sse[: cut + 2], self.sse[cut + 2 :]
                    self.parse_events(buffer, 0, len(buffer))
            else:
                self.parse_events(raw, start, end)
            if self.done.done():
                return
            position = end + 2
        self.raw = raw[position:]

    def parse_events(self, buffer: bytes, position: int, stop: int) -> None:
        """The complete events in ``buffer[position:stop]``."""
        now = time.time()
        histogram = self.stats["latency"]
        while position < stop:
            # An event ends at its first empty line; a lone "\n" is found by memchr, which
            # is several times faster than searching for "\n\n" through the long data line.
            block_end = position
            while True:
                block_end = buffer.find(b"\n", block_end, stop)
                if block_end < 0 or block_end + 1 >= stop:
                    return
                if buffer[block_end + 1] == 10:
                    break
                block_end += 1
            kind_at = buffer.find(b"event: ", position, block_end)
            data_at = buffer.find(b"data: ", position, block_end)
            if kind_at < 0 or data_at < 0:  # a keepalive comment
                position = block_end + 2
                continue
            kind = buffer[kind_at + 7 : buffer.find(b"\n", kind_at, block_end)]
            if kind == b"output":
                # Every line is "<8 digits> <17 characters of time>": 26 bytes, 29 apart in
                # the JSON array, so the lines are checked without decoding the JSON.
                start = buffer.find(b'"lines":["', data_at, data_at + 300) + 10
                end = block_end - 3  # the last line's closing quote
                if start < 10 or buffer[end:block_end] != b'"]}' or (end - start + 3) % 29:
                    self.fail(f"unexpected output event {buffer[data_at : data_at + 300]!r}")
                    return
                count = (end - start + 3) // 29
                first = int(buffer[start : start + 8])
                last = int(buffer[end - 26 : end - 18])
                if first != self.expected or last != first + count - 1:
                    self.fail(f"expected line {self.expected}, got {first}..{last}")
                    return
                self.expected = last + 1
                self.lines += count
                self.events += 1
                # Lines are written 100 at a time, each batch with its own time: read one
                # time per batch (where seq % 100 == 0) and count it for the batch's lines.
                index = 0
                while index < count:
                    upto = min(count, index + 100 - (first + index) % 100)
                    at = start + index * 29 + 9
                    bucket = int((now - float(buffer[at : at + 17])) * 10_000)  # 0.1 ms
                    histogram[bucket] = histogram.get(bucket, 0) + (upto - index)
                    index = upto
            elif kind == b"run_finished":
                self.finish()
                return
            position = block_end + 2

    def fail(self, message: str) -> None:
        self.error = message
        self.finish()

    def finish(self) -> None:
        if not self.connected.done():
            self.connected.set_result(None)
        if not self.done.done():
            self.done.set_result(None)
        self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            self.error = self.error or f"connection lost after {self.lines} lines"
            self.finish()


async def sse_clients(host: str, port: int, run_id: str, count: int) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    stats: dict[str, Any] = {"latency": {}}
    request = (
        f"GET /api/v1/runs/{run_id}/events HTTP/1.1\r\nhost: {host}\r\n"
        "accept: text/event-stream\r\n\r\n"
    ).encode()
    clients: list[SSEClient] = []
    for _ in range(count):
        done: asyncio.Future[None] = loop.create_future()
        client = SSEClient(request, stats, done)
        await loop.create_connection(lambda c=client: c, host, port)  # type: ignore[misc]
        clients.append(client)
    await asyncio.gather(*(c.connected for c in clients))
    print(json.dumps({"connected": time.time()}), flush=True)
    await asyncio.wait_for(
        asyncio.gather(*(c.done for c in clients)), timeout=TOOL_SLEEP + PRINT_SECONDS + 300
    )
    return {
        "lines": [c.lines for c in clients],
        "events": [c.events for c in clients],
        "errors": [c.error for c in clients if c.error],
        "latency": stats["latency"],
    }


def sse_client_main(host: str, port: int, run_id: str, count: int) -> None:
    result = asyncio.run(sse_clients(host, port, run_id, count))
    print(json.dumps(result), flush=True)


def fanout(daemon: Daemon) -> dict[str, Any]:
    total_lines = LINES_PER_SECOND * PRINT_SECONDS
    status, _headers, body = asyncio.run(
        Connection(daemon.host, daemon.port).get(
            f"/cmd/ticker/{TOOL_SLEEP:g}/{LINES_PER_SECOND}/{PRINT_SECONDS}?onlyid=true"
        )
    )
    assert status == 202, (status, body)
    run_id = body.decode()
    submitted = time.time()
    rss_before = daemon.memory_mib("VmRSS")
    cpu_before = daemon.cpu_seconds()
    per_process = FANOUT_CLIENTS // FANOUT_PROCESSES
    processes = [
        subprocess.Popen(
            [
                PYTHON,
                __file__,
                "--sse-client",
                daemon.host,
                str(daemon.port),
                run_id,
                str(per_process),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(FANOUT_PROCESSES)
    ]
    connected = []
    for process in processes:
        assert process.stdout is not None
        connected.append(json.loads(process.stdout.readline())["connected"])
    results, client_cpu, client_sys = [], 0.0, 0.0
    for process in processes:
        assert process.stdout is not None
        results.append(json.loads(process.stdout.read()))
        _pid, _status, usage = os.wait4(process.pid, 0)
        process.returncode = 0
        client_cpu += usage.ru_utime + usage.ru_stime
        client_sys += usage.ru_stime
    cpu = daemon.cpu_seconds() - cpu_before
    daemon.wait_idle()
    histogram: Counter[int] = Counter()
    for result in results:
        histogram.update({int(k): v for k, v in result["latency"].items()})
    lines = [n for result in results for n in result["lines"]]
    events = [n for result in results for n in result["events"]]
    errors = [e for result in results for e in result["errors"]]
    first_write = _first_write_time(daemon, run_id)
    return {
        "clients": len(lines),
        "complete": sum(1 for n in lines if n == total_lines),
        "events": statistics.median(events),
        "errors": errors,
        "connect_s": max(connected) - submitted,
        "connected_before_output": max(connected) < first_write,
        "p50": _histogram_percentile(histogram, 0.50),
        "p99": _histogram_percentile(histogram, 0.99),
        "max": max(histogram) / 10 if histogram else float("nan"),
        "rss_before": rss_before,
        "rss_peak": daemon.memory_mib("VmHWM"),
        "daemon_cpu": cpu,
        "client_cpu": client_cpu,
        "client_sys": client_sys,
    }


def _first_write_time(daemon: Daemon, run_id: str) -> float:
    with (daemon.home / "runs" / run_id / "events.jsonl").open("rb") as events:
        for line in events:
            event = json.loads(line)
            if event["kind"] == "output":
                return float(event["lines"][0][9:])
    return float("inf")


def _histogram_percentile(histogram: Counter[int], fraction: float) -> float:
    """Milliseconds from a histogram of 0.1 ms buckets."""
    total = sum(histogram.values())
    seen = 0
    for bucket in sorted(histogram):
        seen += histogram[bucket]
        if seen > fraction * total:
            return bucket / 10
    return float("nan")


# -- the benchmark ---------------------------------------------------------------------------


def rate_and_submit(daemon: Daemon) -> dict[str, Any]:
    host, port = daemon.host, daemon.port
    # Warm up: the tools get installed by their first run, the paths get cached.
    for path in ("/cmd/nothing", "/cmd/noop", "/healthz"):
        asyncio.run(closed_loop(host, port, path, 1.0, workers=4))
    daemon.wait_idle()
    out: dict[str, Any] = {"load": os.getloadavg()[0]}
    out["seq_healthz"] = asyncio.run(sequential(host, port, "/healthz"))
    out["seq_onlyid"] = asyncio.run(sequential(host, port, "/cmd/nothing?onlyid=true"))
    daemon.wait_idle()
    ceiling = asyncio.run(closed_loop(host, port, "/healthz", 3.0))
    out["ceiling_raw"], out["healthz_p50"] = ceiling["rate"], ceiling["p50"]
    out["ceiling_httpx"] = asyncio.run(httpx_ceiling(daemon.url, 3.0))
    out["rate"] = run_rate(daemon)
    busy = machine_busy_seconds()
    out["bare"], out["bare_cpu"] = asyncio.run(
        bare_spawn_rate([shutil.which("true") or "/bin/true"], BARE_SECONDS)
    )
    out["bare_machine"] = (machine_busy_seconds() - busy) / (out["bare"] * BARE_SECONDS) * 1000
    python_rate = asyncio.run(closed_loop(host, port, "/cmd/noop", PYTHON_RATE_SECONDS))
    python_rate["answered"], python_rate["recorded"] = check_recorded(
        daemon, python_rate.pop("ids")
    )
    out["python"] = python_rate
    tool = daemon.home / "tools" / "noop" / "1.0.0" / "main.py"
    out["bare_python"], _ = asyncio.run(bare_spawn_rate([PYTHON, str(tool)], BARE_SECONDS))
    light = asyncio.run(
        open_loop(host, port, "/cmd/nothing?onlyid=true", LIGHT_RATE, SUBMIT_SECONDS / 2)
    )
    light["answered"], light["recorded"] = check_recorded(daemon, light.pop("ids"))
    out["light"] = light
    out["submit"] = submit_latency(daemon)
    return out


def run_rate(daemon: Daemon) -> dict[str, Any]:
    cpu, busy = daemon.cpu_seconds(), machine_busy_seconds()
    rate = asyncio.run(closed_loop(daemon.host, daemon.port, "/cmd/nothing", RATE_SECONDS))
    rate["cpu_ms_per_run"] = (daemon.cpu_seconds() - cpu) / max(rate["count"], 1) * 1000
    rate["machine_ms_per_run"] = (machine_busy_seconds() - busy) / max(rate["count"], 1) * 1000
    rate["answered"], rate["recorded"] = check_recorded(daemon, rate.pop("ids"))
    return rate


def submit_latency(daemon: Daemon) -> dict[str, Any]:
    path = "/cmd/nothing?onlyid=true"
    submit = asyncio.run(open_loop(daemon.host, daemon.port, path, SUBMIT_RATE, SUBMIT_SECONDS))
    submit["answered"], submit["recorded"] = check_recorded(daemon, submit.pop("ids"))
    return submit


def warm_up(daemon: Daemon) -> None:
    """The tool installed by its first run, the paths cached; then nothing left running."""
    asyncio.run(closed_loop(daemon.host, daemon.port, "/cmd/nothing", 1.0, workers=4))
    daemon.wait_idle()


async def side_by_side(daemons: list[Daemon], workers: int) -> list[dict[str, Any]]:
    loops = (closed_loop(d.host, d.port, "/cmd/nothing", RATE_SECONDS, workers) for d in daemons)
    return list(await asyncio.gather(*loops))


def split(count: int, repeats: int, root: Path, cwd: Path, max_parallel: int) -> int:
    """The run rate of ``count`` daemons side by side, each in a home of its own, sharing the
    16 clients: the most a daemon of several processes could reach on this machine, since
    these share neither a store nor anything else. One daemon alone is measured beside, in
    the same way, in turn."""
    totals: dict[int, list[float]] = {1: [], count: []}
    machine: dict[int, list[float]] = {1: [], count: []}
    complete = True
    for repeat in range(repeats):
        for how_many in (count, 1) if repeat % 2 == 0 else (1, count):
            daemons = [
                Daemon(root, cwd, f"split{repeat}-{how_many}-{i}", max_parallel)
                for i in range(how_many)
            ]
            try:
                for daemon in daemons:
                    warm_up(daemon)
                busy = machine_busy_seconds()
                results = asyncio.run(side_by_side(daemons, CONCURRENCY // how_many))
                busy = machine_busy_seconds() - busy
                runs = sum(r["count"] for r in results)
                recorded = sum(
                    check_recorded(d, r.pop("ids"))[1]
                    for d, r in zip(daemons, results, strict=True)
                )
            finally:
                for daemon in daemons:
                    daemon.stop()
            complete &= recorded == runs
            rate = sum(r["rate"] for r in results)
            totals[how_many].append(rate)
            machine[how_many].append(busy / max(runs, 1) * 1000)
            print(
                f"  {how_many} daemon(s): {rate:.0f} runs/s, the machine's CPU "
                f"{machine[how_many][-1]:.2f} ms a run, recorded {recorded}/{runs}",
                flush=True,
            )
    print(f"\nmedians of {repeats} (each run in brackets)")
    for how_many in (1, count):
        row(f"{how_many} daemon(s), {CONCURRENCY} clients in all", totals[how_many], "runs/s")
        row("  the machine's CPU per run", machine[how_many], "ms", "{:.2f}")
    print(f"every run recorded: {verdict(complete)}")
    return 0 if complete else 1


def paired(baseline: Path, repeats: int, root: Path, cwd: Path, max_parallel: int) -> int:
    """This tree's daemon and another tree's, alternating (ABBA), the run rate and the submit
    latency of each: on a machine whose speed drifts, only pairs tell the code from the noise."""
    trees = {"this tree": Path(__file__).resolve().parent.parent, "baseline": baseline.resolve()}
    results: dict[str, list[dict[str, Any]]] = {label: [] for label in trees}
    for repeat in range(repeats):
        order = list(trees.items()) if repeat % 2 == 0 else list(trees.items())[::-1]
        for label, tree in order:
            daemon = Daemon(root, cwd, f"{label[0]}{repeat}", max_parallel, source=tree)
            try:
                warm_up(daemon)
                result = {"rate": run_rate(daemon)}
                daemon.wait_idle()
                result["submit"] = submit_latency(daemon)
            finally:
                daemon.stop()
            results[label].append(result)
            rate, submit = result["rate"], result["submit"]
            print(
                f"  {label}: {rate['rate']:.0f} runs/s, p99 {rate['p99']:.0f} ms, daemon CPU "
                f"{rate['cpu_ms_per_run']:.2f} ms/run, machine {rate['machine_ms_per_run']:.2f}; "
                f"onlyid p99 {submit['p99']:.1f} ms; recorded {rate['recorded']}/"
                f"{rate['answered']}",
                flush=True,
            )
    print(f"\nmedians of {repeats} each (each run in brackets)")
    for key, sub, label, unit in (
        ("rate", "rate", "GET /cmd/nothing, 16 clients", "runs/s"),
        ("rate", "p99", "  latency p99", "ms"),
        ("rate", "cpu_ms_per_run", "  daemon CPU per run", "ms"),
        ("rate", "machine_ms_per_run", "  the machine's CPU per run", "ms"),
        ("submit", "p99", "onlyid=true at 100/s, p99", "ms"),
    ):
        for tree in trees:
            row(f"{label}: {tree}", [r[key][sub] for r in results[tree]], unit, "{:.2f}")
    complete = all(
        r[key]["recorded"] == r[key]["answered"]
        for rows in results.values()
        for r in rows
        for key in ("rate", "submit")
    )
    print(f"every run recorded: {verdict(complete)}")
    return 0 if complete else 1


def med(values: list[float]) -> float:
    return statistics.median(values)


def row(label: str, values: list[float], unit: str, fmt: str = "{:.1f}", note: str = "") -> None:
    each = " / ".join(fmt.format(v) for v in values)
    print(f"{label:<46} {fmt.format(med(values)):>9} {unit:<5} ({each}) {note}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--repeats", type=int, default=REPEATS)
    parser.add_argument("--max-parallel", type=int, default=MAX_PARALLEL)
    parser.add_argument("--only", choices=["rate", "fanout"], default=None)
    parser.add_argument("--sse-client", nargs=4, metavar=("HOST", "PORT", "RUN", "COUNT"))
    parser.add_argument(
        "--split", type=int, metavar="N", help="N daemons side by side against one: run rate"
    )
    parser.add_argument(
        "--baseline", type=Path, help="another commit's source tree: run rate and submit, paired"
    )
    args = parser.parse_args()
    if args.sse_client:
        host, port, run_id, count = args.sse_client
        sse_client_main(host, int(port), run_id, int(count))
        return 0

    print(f"machine: {machine()}")
    print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    rates: list[dict[str, Any]] = []
    fans: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        cwd = root / "cwd"
        registry = cwd / "registry"
        (registry / "nothing" / "1.0.0").mkdir(parents=True)
        (registry / "nothing" / "1.0.0" / "tool.toml").write_text(NOTHING_TOML)
        write_tool(registry, "noop", "1.0.0", "pass\n")
        write_tool(registry, "ticker", "1.0.0", TICKER)
        if args.split:
            return split(args.split, args.repeats, root, cwd, args.max_parallel)
        if args.baseline:
            global HIDE_UVLOOP
            HIDE_UVLOOP = root / "no-uvloop"
            (HIDE_UVLOOP / "uvloop").mkdir(parents=True)
            (HIDE_UVLOOP / "uvloop" / "__init__.py").write_text("raise ImportError('hidden')\n")
            return paired(args.baseline, args.repeats, root, cwd, args.max_parallel)
        for repeat in range(args.repeats):
            if args.only in (None, "rate"):
                daemon = Daemon(root, cwd, f"rate{repeat}", args.max_parallel)
                try:
                    rates.append(rate_and_submit(daemon))
                finally:
                    daemon.stop()
                print(f"  rate/submit {repeat + 1}: {_brief(rates[-1])}", flush=True)
            if args.only in (None, "fanout"):
                daemon = Daemon(root, cwd, f"fan{repeat}", args.max_parallel)
                try:
                    fans.append(fanout(daemon))
                finally:
                    daemon.stop()
                brief = {k: v for k, v in fans[-1].items() if k != "errors"}
                print(
                    f"  fan-out {repeat + 1}: {json.dumps(brief)}, load {os.getloadavg()[0]:.2f}",
                    flush=True,
                )
    print(f"load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(
        f"daemon: --max-parallel {args.max_parallel} --queue {QUEUE}; medians of "
        f"{args.repeats} (each run in brackets)"
    )
    ok = True
    if rates:
        ok &= _report_rates(rates)
    if fans:
        ok &= _report_fanout(fans)
    return 0 if ok else 1


def _brief(result: dict[str, Any]) -> str:
    r, s = result["rate"], result["submit"]
    return (
        f"{r['rate']:.0f} runs/s p99 {r['p99']:.0f} ms, bare {result['bare']:.0f}/s, "
        f"submit p99 {s['p99']:.1f} ms, load {result['load']:.2f} -> {os.getloadavg()[0]:.2f}"
    )


def _report_rates(rates: list[dict[str, Any]]) -> bool:
    def pick(*keys: str) -> list[float]:
        values = []
        for result in rates:
            value: Any = result
            for key in keys:
                value = value[key]
            values.append(float(value))
        return values

    print("\n0. the client side, and one request at a time")
    row("GET /healthz, one connection, one at a time", pick("seq_healthz"), "ms")
    row("GET /cmd/nothing?onlyid=true, the same", pick("seq_onlyid"), "ms")
    row("GET /healthz, 16 connections (raw sockets)", pick("ceiling_raw"), "req/s", "{:.0f}")
    row("  latency p50", pick("healthz_p50"), "ms")
    row("GET /healthz, httpx.AsyncClient, 16 at once", pick("ceiling_httpx"), "req/s", "{:.0f}")
    print(f"\n1. run rate, {CONCURRENCY} concurrent clients")
    rate = pick("rate", "rate")
    p99 = pick("rate", "p99")
    row(
        "GET /cmd/nothing (system tool: true)",
        rate,
        "runs/s",
        "{:.0f}",
        f"target >= {TARGET_RATE:.0f}: {verdict(med(rate) >= TARGET_RATE)}",
    )
    row("  latency p50", pick("rate", "p50"), "ms")
    row(
        "  latency p99",
        p99,
        "ms",
        note=f"target < {TARGET_RATE_P99_MS:.0f}: {verdict(med(p99) < TARGET_RATE_P99_MS)}",
    )
    row("  daemon CPU per run", pick("rate", "cpu_ms_per_run"), "ms")
    row(
        "  the machine's CPU per run, all processes",
        pick("rate", "machine_ms_per_run"),
        "ms",
        note=f"(at {TARGET_RATE:.0f}/s, {os.cpu_count()} cores give "
        f"{(os.cpu_count() or 1) / TARGET_RATE * 1000:.1f})",
    )
    recorded_ok = all(r["rate"]["recorded"] == r["rate"]["answered"] for r in rates)
    print(
        f"  recorded as succeeded / answered: {_recorded(rates, 'rate')} "
        f"{verdict(recorded_ok)}; failures {[r['rate']['failures'] for r in rates]}"
    )
    row("bare asyncio loop spawning true", pick("bare"), "/s", "{:.0f}")
    row("  the loop's CPU per spawn", pick("bare_cpu"), "ms", "{:.2f}")
    row("  the machine's CPU per spawn, all processes", pick("bare_machine"), "ms", "{:.2f}")
    row("GET /cmd/noop (Python tool)", pick("python", "rate"), "runs/s", "{:.0f}")
    row("  latency p99", pick("python", "p99"), "ms")
    row("bare asyncio loop spawning the Python tool", pick("bare_python"), "/s", "{:.0f}")
    print(f"  recorded: {_recorded(rates, 'python')}")
    print(f"\n2. onlyid=true open loop, {SUBMIT_RATE}/s for {SUBMIT_SECONDS:g} s")
    sp99 = pick("submit", "p99")
    row("latency p50", pick("submit", "p50"), "ms")
    row(
        "latency p99",
        sp99,
        "ms",
        note=f"target < {TARGET_SUBMIT_P99_MS:.0f}: {verdict(med(sp99) < TARGET_SUBMIT_P99_MS)}",
    )
    row("latency max", pick("submit", "max"), "ms")
    row("sender lateness max", pick("submit", "late_max"), "ms")
    row("connections opened", pick("submit", "connections"), "", "{:.0f}")
    submit_ok = all(r["submit"]["recorded"] == r["submit"]["answered"] for r in rates)
    print(f"  recorded: {_recorded(rates, 'submit')} {verdict(submit_ok)}")
    row(f"at {LIGHT_RATE}/s for {SUBMIT_SECONDS / 2:g} s: latency p50", pick("light", "p50"), "ms")
    row("  latency p99", pick("light", "p99"), "ms")
    print(f"  recorded: {_recorded(rates, 'light')}")
    return (
        med(rate) >= TARGET_RATE
        and med(p99) < TARGET_RATE_P99_MS
        and med(sp99) < TARGET_SUBMIT_P99_MS
        and recorded_ok
        and submit_ok
    )


def _recorded(rates: list[dict[str, Any]], key: str) -> str:
    return ", ".join(f"{r[key]['recorded']}/{r[key]['answered']}" for r in rates)


def _report_fanout(fans: list[dict[str, Any]]) -> bool:
    def pick(key: str) -> list[float]:
        return [float(f[key]) for f in fans]

    total = LINES_PER_SECOND * PRINT_SECONDS
    print(
        f"\n3. fan-out: {FANOUT_CLIENTS} SSE clients in {FANOUT_PROCESSES} processes, "
        f"{LINES_PER_SECOND}/s for {PRINT_SECONDS} s"
    )
    complete = all(f["complete"] == FANOUT_CLIENTS and not f["errors"] for f in fans)
    print(
        f"  clients with all {total:,} lines in order: "
        f"{', '.join(str(f['complete']) for f in fans)} of {FANOUT_CLIENTS} {verdict(complete)}"
    )
    for f in fans:
        if f["errors"]:
            print(f"  errors: {len(f['errors'])}, first: {f['errors'][0]}")
    print(f"  all connected before the first line: {[f['connected_before_output'] for f in fans]}")
    row("connecting all clients (from submit)", pick("connect_s"), "s", "{:.2f}")
    row("output events per client (median)", pick("events"), "", "{:.0f}")
    p99 = pick("p99")
    rss = pick("rss_peak")
    row("delivery latency p50", pick("p50"), "ms")
    row(
        "delivery latency p99",
        p99,
        "ms",
        note=f"target < {TARGET_FANOUT_P99_MS:.0f}: {verdict(med(p99) < TARGET_FANOUT_P99_MS)}",
    )
    row("delivery latency max", pick("max"), "ms")
    row("daemon RSS before the run", pick("rss_before"), "MiB")
    row(
        "daemon peak RSS (VmHWM)",
        rss,
        "MiB",
        note=f"target < {TARGET_RSS_MB:.0f} MB: {verdict(med(rss) * 1.048576 < TARGET_RSS_MB)}",
    )
    row("daemon CPU during the fan-out", pick("daemon_cpu"), "s")
    row("client processes' CPU", pick("client_cpu"), "s")
    row("  of which in the kernel", pick("client_sys"), "s")
    return complete and med(p99) < TARGET_FANOUT_P99_MS and med(rss) * 1.048576 < TARGET_RSS_MB


if __name__ == "__main__":
    sys.exit(main())
