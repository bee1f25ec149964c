"""toolrun beside its peers, measured side by side in the same run (issue 16).

1. Run rate: a do-nothing run requested over HTTP from 16 connections for 10 s (`wrk -c16 -t2
   --latency`, `--seconds` to change the duration), against three servers in turn: toolrun's
   daemon (`GET /cmd/nothing`, a system tool wrapping `true`), Debian's `webhook`
   (adnanh/webhook 2.8, `GET /hooks/true`: a hook executing /bin/true with
   `include-command-output-in-response`, so that the answer waits for the command as toolrun's
   does) and the floor for Python on this machine: a minimal ASGI app on uvicorn (h11 and the
   asyncio loop, as the daemon), written into the temporary folder, that for each request
   inserts a SQLite row (WAL) before and updates it after, spawns /bin/true through subprocess
   (posix_spawn: `close_fds=False`; children waited for through pidfds) and streams its
   output. For each: runs/s, p50/p99 latency, the server's own CPU per run (utime + stime of
   its process in /proc/PID/stat, before and after) and the whole machine's (every process,
   wrk included). A small Lua script in wrk keeps every answer's run id: once the server is
   idle each of toolrun's must be in its history.db as `succeeded` (the floor's likewise in its
   own database; webhook keeps no record). Targets: toolrun at least 0.5x webhook's rate, the
   ratio taken within each round, and toolrun's p99 under 100 ms.
2. Submit latency: a run requested open-loop, 200 a second for 10 s (one every 5 ms whatever
   the answers, a request's latency counted from the moment it was due; the raw-socket client
   of benchmarks/daemon.py): toolrun's `GET /cmd/nothing?onlyid=true`, webhook's hook without
   the output (it answers once the command is started) and the floor's `?onlyid=true` (the row
   inserted, the run left going). Target: toolrun's p99 under 20 ms, every run recorded.
3. `toolrun exec` against `uvx`: a do-nothing console script in a wheel written here, installed
   offline with `uv tool install` into UV_TOOL_DIR/UV_TOOL_BIN_DIR under the temporary folder,
   and the same do-nothing Python tool in a toolrun folder registry. Each round runs the
   console script directly, `uvx --offline` of it (UV_PYTHON naming this interpreter; beside
   it, for reference, uvx finding a Python itself, which on a machine with pyenv shims first
   on PATH runs a shim), the Python tool directly and `toolrun exec` of it; 30 rounds
   (`--rounds`). The overheads are medians minus the direct medians. Target: toolrun's
   overhead at most uvx's.
4. Output: 2,000,000 lines through `toolrun run --plain >/dev/null` (a one-step toolchain, the
   tool of benchmarks/throughput.py) against the tool piped to `cat >/dev/null`. Targets: at
   most 1.3x, toolrun's peak RSS under 100 MB.
5. A one-step `toolrun run --plain` against `toolrun exec` of the same tool, the system tool
   wrapping `true` (the target) and the do-nothing Python tool (for reference), `--rounds`
   rounds. Target: at most 1.5x.

Every side is measured in turn within each round, so that a machine whose speed changes from
minute to minute cannot favour one side (parts 1, 2, 4 and 5 reverse the order from one round
to the next, ABC CBA ...; part 3 keeps the order above in every round); the servers are
started afresh in each round (toolrun's daemon as `python -m toolrun daemon -p 0
--max-parallel 16 --queue 100000` in a scratch home, as benchmarks/daemon.py does).
Medians are printed beside each repetition's figure (for parts 3 and 5, the medians of
`--repeats` equal blocks of the rounds). The load generators run on the same machine and share
its cores. `webhook` and `wrk` come from Debian (`apt-get install webhook wrk`), `uv` from PyPI
(`--uv PATH` when it is not on PATH); a missing one skips only its comparison. `--only
rate,submit,exec,output,run` picks parts. Exits 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import zipfile
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import daemon as daemon_bench
from common import PYTHON, TOOLRUN, environment, machine, median_ms, wall, write_tool
from daemon import NOTHING_TOML, Connection, check_recorded, machine_busy_seconds, med, percentile
from throughput import SCRIPT as LINES_SCRIPT
from throughput import peak_rss_mib

Result = dict[str, Any]
PARTS = ("rate", "submit", "exec", "output", "run")
REPEATS = 3
RATE_SECONDS = 10.0
CONNECTIONS = 16
WRK_THREADS = 2
SUBMIT_RATE = 200  # requests a second, open loop
SUBMIT_SECONDS = 10.0
ROUNDS = 30
LINES = 2_000_000
UVX_WAYS = ("uvx --offline, UV_PYTHON this Python", "uvx --offline, finding a Python itself")
RUN_TOOLS = {"nothing": "system tool (true)", "noop": "Python tool"}

TARGET_RATE_RATIO = 0.5
TARGET_RATE_P99_MS = 100.0
TARGET_SUBMIT_P99_MS = 20.0
TARGET_OUTPUT_RATIO = 1.3
TARGET_RSS_MB = 100.0
TARGET_RUN_RATIO = 1.5

INSTALL = {
    "wrk": "apt-get install -y wrk",
    "webhook": "apt-get install -y webhook",
    "uv": "python -m venv /tmp/uv && /tmp/uv/bin/pip install uv, then --uv /tmp/uv/bin/uv",
}

# wrk keeps each answer's run id (toolrun's header, or the floor's) and writes its figures.
WRK_LUA = """\
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) ids = {} end
function response(status, headers, body)
  local id = headers["x-toolrun-run-id"] or headers["x-run-id"]
  if id then ids[#ids + 1] = id end
end
function done(summary, latency, requests)
  local out = assert(io.open(os.getenv("PEERS_WRK_OUT"), "w"))
  local e = summary.errors
  out:write(string.format(
    '{"requests": %d, "duration_us": %d, "p50_us": %.0f, "p99_us": %.0f, "max_us": %.0f, ' ..
    '"errors": {"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}}\\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    latency.max, e.connect, e.read, e.write, e.status, e.timeout))
  for _, thread in ipairs(threads) do
    for _, id in ipairs(thread:get("ids")) do out:write(id, "\\n") end
  end
  out:close()
end
"""

HOOKS = [
    {
        "id": "true",
        "execute-command": "/bin/true",
        "include-command-output-in-response": True,
        "http-methods": ["GET"],
    },
    {"id": "true-async", "execute-command": "/bin/true", "http-methods": ["GET"]},
]

FLOOR_APP = '''\
"""The floor for Python here: for each request a SQLite row (WAL) inserted before and updated
after, /bin/true spawned through subprocess (posix_spawn: close_fds=False) and its output
streamed; with ?onlyid=true the row's id at once, the run going on meanwhile."""

import asyncio
import os
import sqlite3
import sys
import time
from asyncio.subprocess import DEVNULL, PIPE, STDOUT

DB = sqlite3.connect(os.environ["FLOOR_DB"], isolation_level=None)
DB.execute("PRAGMA journal_mode = WAL")
DB.execute("PRAGMA synchronous = NORMAL")
DB.execute(
    "CREATE TABLE IF NOT EXISTS runs (id INTEGER PRIMARY KEY, argv TEXT, status TEXT,"
    " started REAL, ended REAL, exit_code INTEGER)"
)
ARGV = ["/bin/true"]
BACKGROUND = set()


async def run(run_id, send=None):
    process = await asyncio.create_subprocess_exec(
        *ARGV, stdin=DEVNULL, stdout=PIPE, stderr=STDOUT, close_fds=False
    )
    while chunk := await process.stdout.read(65536):
        if send is not None:
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
    code = await process.wait()
    DB.execute(
        "UPDATE runs SET status = ?, ended = ?, exit_code = ? WHERE id = ?",
        ("succeeded" if code == 0 else "failed", time.time(), code, run_id),
    )


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        return await lifespan(receive, send)
    run_id = DB.execute(
        "INSERT INTO runs (argv, status, started) VALUES (?, 'running', ?)",
        (" ".join(ARGV), time.time()),
    ).lastrowid
    headers = [(b"content-type", b"text/plain"), (b"x-run-id", str(run_id).encode())]
    if b"onlyid=true" in scope["query_string"]:
        task = asyncio.create_task(run(run_id))
        BACKGROUND.add(task)
        task.add_done_callback(BACKGROUND.discard)
        await send({"type": "http.response.start", "status": 202, "headers": headers})
        await send({"type": "http.response.body", "body": str(run_id).encode()})
        return
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await run(run_id, send)
    await send({"type": "http.response.body", "body": b""})


async def lifespan(receive, send):
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            if sys.version_info < (3, 12) and hasattr(os, "pidfd_open"):
                # Children waited for through pidfds, not a thread each (3.12 does so itself).
                watcher = asyncio.PidfdChildWatcher()
                watcher.attach_loop(asyncio.get_running_loop())
                asyncio.set_child_watcher(watcher)
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
'''

# A console script that does nothing, as a wheel (written by hand: no build backend offline).
WHEEL_FILES = {
    "peernoop/__init__.py": "def main() -> None:\n    pass\n",
    "peernoop-1.0.0.dist-info/METADATA": "Metadata-Version: 2.1\nName: peernoop\nVersion: 1.0.0\n",
    "peernoop-1.0.0.dist-info/WHEEL": (
        "Wheel-Version: 1.0\nGenerator: peers.py\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    ),
    "peernoop-1.0.0.dist-info/entry_points.txt": "[console_scripts]\npeernoop = peernoop:main\n",
}


def load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def met(ok: bool) -> str:
    return "met" if ok else "missed"


def missing(program: str, found: str | None) -> bool:
    if found:
        return False
    print(f"  {program} not found: {INSTALL[program]}; its comparison is skipped", flush=True)
    return True


def skipped(message: str) -> bool:
    print(message)
    return True


def in_order(items: list[Any], round_: int) -> list[Any]:
    """The sides of a round, reversed every other round (ABC CBA ABC ...)."""
    return items if round_ % 2 == 0 else items[::-1]


def blocks(values: list[float], count: int) -> list[float]:
    """The medians of ``count`` equal consecutive blocks of ``values`` (seconds -> ms)."""
    size = max(1, len(values) // count)
    return [median_ms(values[i : i + size]) for i in range(0, size * count, size)]


def line(
    label: str, middle: float, each: list[float], unit: str, fmt: str = "{:.1f}", note: str = ""
) -> None:
    """One line of a table: the median, its unit, each repetition's figure, a verdict."""
    figures = " / ".join(fmt.format(v) for v in each)
    print(f"{label:<50} {fmt.format(middle):>9} {unit:<6} ({figures}) {note}".rstrip())


def row(label: str, values: list[float], unit: str, fmt: str = "{:.1f}", note: str = "") -> None:
    line(label, med(values), values, unit, fmt, note)


# -- the servers -----------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Server:
    """A server process on 127.0.0.1: its rate and submit paths, its CPU, its records."""

    label = ""
    rate_path = ""
    submit_path = ""
    host = "127.0.0.1"
    port = 0
    pid = 0

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def recorded(self, ids: list[str]) -> int | None:
        """Of ``ids``, how many are recorded as succeeded once idle (None: no records)."""
        return None

    def wait_idle(self) -> None:
        time.sleep(0.5)

    def stop(self) -> None:
        raise NotImplementedError


class Toolrun(Server):
    label = "toolrun daemon"
    rate_path = "/cmd/nothing"
    submit_path = "/cmd/nothing?onlyid=true"

    def __init__(self, root: Path, cwd: Path, name: str) -> None:
        self.daemon = daemon_bench.Daemon(root, cwd, name, CONNECTIONS)
        self.host, self.port, self.pid = self.daemon.host, self.daemon.port, self.daemon.pid

    def recorded(self, ids: list[str]) -> int | None:
        return check_recorded(self.daemon, ids)[1]

    def wait_idle(self) -> None:
        self.daemon.wait_idle()

    def stop(self) -> None:
        self.daemon.stop()


class Process(Server):
    """A server we start ourselves on a free port, up once it accepts connections."""

    def __init__(self, argv: list[str], env: dict[str, str], log: Path) -> None:
        with log.open("wb") as out:
            self.process = subprocess.Popen(
                argv, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=out
            )
        self.pid = self.process.pid
        deadline = time.monotonic() + 30
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"{argv[0]} exited: {log.read_text()[-2000:]}")
            try:
                socket.create_connection((self.host, self.port), timeout=1).close()
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{argv[0]} did not listen within 30 s") from None
                time.sleep(0.05)

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


class Webhook(Process):
    label = "webhook 2.8"
    rate_path = "/hooks/true"
    submit_path = "/hooks/true-async"

    def __init__(self, root: Path, program: str, name: str) -> None:
        self.port = free_port()
        hooks = root / "hooks.json"
        argv = [program, "-hooks", str(hooks), "-port", str(self.port), "-ip", self.host]
        super().__init__(argv, dict(os.environ), root / f"webhook-{name}.log")


class Floor(Process):
    label = "python floor (uvicorn)"
    rate_path = "/run"
    submit_path = "/run?onlyid=true"

    def __init__(self, root: Path, name: str) -> None:
        self.port = free_port()
        self.db = root / f"floor-{name}.db"
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        env["FLOOR_DB"] = str(self.db)
        argv = [PYTHON, "-m", "uvicorn", "floor:app", "--app-dir", str(root)]
        argv += ["--host", self.host, "--port", str(self.port), "--loop", "asyncio"]
        argv += ["--http", "h11", "--lifespan", "on", "--no-access-log", "--log-level", "warning"]
        super().__init__(argv, env, root / f"floor-{name}.log")

    def statuses(self) -> dict[str, str]:
        db = sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, timeout=30)
        try:
            return {str(i): s for i, s in db.execute("SELECT id, status FROM runs")}
        finally:
            db.close()

    def wait_idle(self) -> None:
        deadline = time.monotonic() + 120
        while "running" in self.statuses().values():
            if time.monotonic() > deadline:
                raise RuntimeError("the floor still has runs going")
            time.sleep(0.2)

    def recorded(self, ids: list[str]) -> int | None:
        self.wait_idle()
        statuses = self.statuses()
        return sum(1 for run_id in set(ids) if statuses.get(run_id) == "succeeded")


# -- the load --------------------------------------------------------------------------------


def wrk(program: str, root: Path, server: Server, seconds: float, connections: int) -> Result:
    """``connections`` connections for ``seconds``, each sending its next request when the
    last is answered; figures from wrk's own histogram, the run ids from every answer."""
    out = root / "wrk.out"
    env = dict(os.environ, PEERS_WRK_OUT=str(out))
    threads = min(WRK_THREADS, connections)
    argv = [program, f"-c{connections}", f"-t{threads}", f"-d{seconds:g}s", "--latency"]
    argv += ["--timeout", "30s", "-s", str(root / "peers.lua")]
    argv.append(f"http://{server.host}:{server.port}{server.rate_path}")
    cpu, busy = server.cpu_seconds(), machine_busy_seconds()
    subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, check=True)
    cpu, busy = server.cpu_seconds() - cpu, machine_busy_seconds() - busy
    head, *ids = out.read_text().splitlines()
    figures = json.loads(head)
    runs = max(figures["requests"], 1)
    return {
        "runs": figures["requests"],
        "rate": figures["requests"] / (figures["duration_us"] / 1e6),
        "p50": figures["p50_us"] / 1000,
        "p99": figures["p99_us"] / 1000,
        "max": figures["max_us"] / 1000,
        "errors": sum(figures["errors"].values()),
        "cpu_ms": cpu / runs * 1000,
        "machine_ms": busy / runs * 1000,
        "ids": ids,
    }


async def open_loop(host: str, port: int, path: str, rate: int, seconds: float) -> Result:
    """One request every 1/rate s whatever the answers; latency from when it was due."""
    idle: list[Connection] = []
    latencies: list[float] = []
    lateness: list[float] = []
    ids: list[str] = []
    failures: Counter[int] = Counter()

    async def one(due: float) -> None:
        lateness.append(time.perf_counter() - due)
        connection = idle.pop() if idle else Connection(host, port)
        status, headers, _body = await connection.get(path)
        latencies.append(time.perf_counter() - due)
        if status not in (200, 202):
            failures[status] += 1
        run_id = headers.get(b"x-toolrun-run-id") or headers.get(b"x-run-id")
        if run_id:
            ids.append(run_id.decode())
        idle.append(connection)

    tasks = []
    start = time.perf_counter() + 0.05
    for index in range(int(rate * seconds)):
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
        "runs": len(latencies),
        "p50": percentile(latencies, 0.50) * 1000,
        "p99": percentile(latencies, 0.99) * 1000,
        "max": latencies[-1] * 1000,
        "late_max": max(lateness) * 1000,
        "errors": sum(failures.values()),
        "ids": ids,
    }


# -- parts 1 and 2: the daemons --------------------------------------------------------------


def servers(root: Path, parts: set[str], options: argparse.Namespace) -> dict[str, list[Result]]:
    """Each round: every server started afresh in turn, warmed up, measured, stopped."""
    wrk_program = shutil.which("wrk")
    webhook_program = shutil.which("webhook")
    if "rate" in parts and missing("wrk", wrk_program):
        parts = parts - {"rate"}
    if not parts & {"rate", "submit"}:
        return {}
    cwd = root / "cwd"
    (cwd / "registry" / "nothing" / "1.0.0").mkdir(parents=True)
    (cwd / "registry" / "nothing" / "1.0.0" / "tool.toml").write_text(NOTHING_TOML)
    (root / "floor.py").write_text(FLOOR_APP)
    (root / "hooks.json").write_text(json.dumps(HOOKS, indent=2))
    (root / "peers.lua").write_text(WRK_LUA)
    daemon_bench.DAEMON_ARGV = [PYTHON, "-m", "toolrun", "daemon"]
    starters: list[tuple[str, Callable[[str], Server]]] = [
        ("toolrun", lambda name: Toolrun(root, cwd, name))
    ]
    if not missing("webhook", webhook_program):
        assert webhook_program is not None
        starters.append(("webhook", lambda name: Webhook(root, webhook_program, name)))
    starters.append(("floor", lambda name: Floor(root, name)))
    results: dict[str, list[Result]] = {key: [] for key, _ in starters}
    for round_ in range(options.repeats):
        for key, start in in_order(starters, round_):
            server = start(f"{key}{round_}")
            result: dict[str, Any] = {
                "label": server.label,
                "rate_path": server.rate_path,
                "submit_path": server.submit_path,
            }
            try:
                # Warm-up: toolrun installs the tool on its first run, caches fill.
                asyncio.run(warm_up(server))
                server.wait_idle()
                if "rate" in parts:
                    assert wrk_program is not None
                    rate = wrk(wrk_program, root, server, options.seconds, CONNECTIONS)
                    rate["recorded"] = server.recorded(rate.pop("ids"))
                    server.wait_idle()
                    result["rate"] = rate
                if "submit" in parts:
                    submit = asyncio.run(
                        open_loop(
                            server.host,
                            server.port,
                            server.submit_path,
                            SUBMIT_RATE,
                            options.submit_seconds,
                        )
                    )
                    submit["recorded"] = server.recorded(submit.pop("ids"))
                    server.wait_idle()
                    result["submit"] = submit
            finally:
                server.stop()
            results[key].append(result)
            print(f"  round {round_ + 1}, {server.label}: {brief(result)}", flush=True)
    return results


async def warm_up(server: Server) -> None:
    connection = Connection(server.host, server.port)
    try:
        for _ in range(20):
            status, _headers, body = await connection.get(server.rate_path)
            if status != 200:
                raise RuntimeError(f"{server.label}: {status} {body[:300]!r}")
    finally:
        connection.close()


def brief(result: dict[str, Any]) -> str:
    said = []
    if "rate" in result:
        r = result["rate"]
        said.append(
            f"{r['rate']:.0f} runs/s, p50 {r['p50']:.1f} p99 {r['p99']:.1f} ms, "
            f"CPU {r['cpu_ms']:.2f} ms/run, recorded {r['recorded']}/{r['runs']}"
        )
    if "submit" in result:
        s = result["submit"]
        said.append(f"submit p99 {s['p99']:.1f} ms, recorded {s['recorded']}/{s['runs']}")
    return "; ".join(said) + f"; load {os.getloadavg()[0]:.2f}"


def report_rate(results: dict[str, list[Result]], seconds: float) -> bool:
    print(
        f"\n1. run rate: a do-nothing run over HTTP, {CONNECTIONS} connections, {seconds:g} s "
        f"(wrk -c{CONNECTIONS} -t{WRK_THREADS}); medians of {len(results['toolrun'])} rounds"
    )
    ok = True
    for key, rounds in results.items():
        label = rounds[0]["label"]
        rates = [r["rate"] for r in rounds]
        p99 = [r["p99"] for r in rates]
        row(
            f"{label}: GET {rounds[0]['rate_path']}", [r["rate"] for r in rates], "runs/s", "{:.0f}"
        )
        row("  latency p50", [r["p50"] for r in rates], "ms")
        note = ""
        if key == "toolrun":
            good = med(p99) < TARGET_RATE_P99_MS
            ok &= good
            note = f"target < {TARGET_RATE_P99_MS:.0f} ms: {met(good)}"
        row("  latency p99", p99, "ms", note=note)
        row("  server CPU per run (its process)", [r["cpu_ms"] for r in rates], "ms", "{:.2f}")
        row("  the machine's CPU per run (all)", [r["machine_ms"] for r in rates], "ms", "{:.2f}")
        recorded = [r["recorded"] for r in rates]
        errors = [r["errors"] for r in rates]
        if recorded[0] is None:
            print(f"  recorded: no records kept; errors {errors}")
        else:
            complete = all(r["recorded"] == r["runs"] for r in rates)
            if key == "toolrun":
                ok &= complete
            counts = ", ".join(f"{r['recorded']}/{r['runs']}" for r in rates)
            print(f"  recorded as succeeded / answered: {counts} {met(complete)}; errors {errors}")
    for peer in ("webhook", "floor"):
        if peer not in results:
            if peer == "webhook":
                print("toolrun / webhook: not measured (webhook missing), target not judged")
            continue
        ratios = [
            t["rate"]["rate"] / p["rate"]["rate"]
            for t, p in zip(results["toolrun"], results[peer], strict=True)
        ]
        note = ""
        if peer == "webhook":
            good = med(ratios) >= TARGET_RATE_RATIO
            ok &= good
            note = f"target >= {TARGET_RATE_RATIO}x: {met(good)}"
        row(f"toolrun / {peer}, rate in the same round", ratios, "x", "{:.3f}", note)
    return ok


def report_submit(results: dict[str, list[Result]], seconds: float) -> bool:
    print(
        f"\n2. submit latency: open loop, {SUBMIT_RATE}/s for {seconds:g} s (latency from when "
        f"each request was due); medians of {len(results['toolrun'])} rounds"
    )
    ok = True
    for key, rounds in results.items():
        label = rounds[0]["label"]
        submits = [r["submit"] for r in rounds]
        p99 = [s["p99"] for s in submits]
        print(f"{label}: GET {rounds[0]['submit_path']}")
        row("  latency p50", [s["p50"] for s in submits], "ms")
        note = ""
        if key == "toolrun":
            good = med(p99) < TARGET_SUBMIT_P99_MS
            ok &= good
            note = f"target < {TARGET_SUBMIT_P99_MS:.0f} ms: {met(good)}"
        row("  latency p99", p99, "ms", note=note)
        row("  latency max", [s["max"] for s in submits], "ms")
        row("  the sender's lateness, max", [s["late_max"] for s in submits], "ms")
        errors = [s["errors"] for s in submits]
        if submits[0]["recorded"] is None:
            print(f"  recorded: no records kept; errors {errors}")
        else:
            complete = all(s["recorded"] == s["runs"] for s in submits)
            if key == "toolrun":
                ok &= complete
            counts = ", ".join(f"{s['recorded']}/{s['runs']}" for s in submits)
            print(f"  recorded as succeeded / answered: {counts} {met(complete)}; errors {errors}")
    return ok


# -- part 3: exec against uvx ----------------------------------------------------------------


def write_wheel(folder: Path) -> Path:
    folder.mkdir(parents=True)
    wheel = folder / "peernoop-1.0.0-py3-none-any.whl"
    record = []
    with zipfile.ZipFile(wheel, "w") as archive:
        for name, text in WHEEL_FILES.items():
            data = text.encode()
            archive.writestr(name, data)
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
            record.append(f"{name},sha256={digest.decode()},{len(data)}")
        record.append("peernoop-1.0.0.dist-info/RECORD,,")
        archive.writestr("peernoop-1.0.0.dist-info/RECORD", "\n".join(record) + "\n")
    return wheel


def uv_ways(root: Path, uv: str) -> dict[str, tuple[list[str], dict[str, str]]]:
    """The console script installed as a uv tool, offline: run directly and through uvx."""
    uv_root = root / "uv"
    python = getattr(sys, "_base_executable", sys.executable)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env.update(
        UV_TOOL_DIR=str(uv_root / "tools"),
        UV_TOOL_BIN_DIR=str(uv_root / "bin"),
        UV_CACHE_DIR=str(uv_root / "cache"),
        UV_PYTHON_DOWNLOADS="never",
        UV_NO_CONFIG="1",
        UV_OFFLINE="1",
    )
    wheel = write_wheel(uv_root / "wheel")
    subprocess.run(
        [uv, "tool", "install", "--offline", "--python", python, str(wheel)],
        env=env,
        check=True,
        capture_output=True,
    )
    uvx_program = Path(uv).with_name("uvx")
    uvx = [str(uvx_program)] if uvx_program.exists() else [uv, "tool", "run"]
    return {
        "console script, directly": ([str(uv_root / "bin" / "peernoop")], env),
        UVX_WAYS[0]: ([*uvx, "--offline", "peernoop"], dict(env, UV_PYTHON=python)),
        UVX_WAYS[1]: ([*uvx, "--offline", "peernoop"], env),
    }


# The least a Python program can do and still record a run: a row before the tool starts and
# after it ends (SQLite, WAL), the tool spawned with its output passed through. The floor for
# `toolrun exec`'s overhead on the machine of the day.
RECORDER = """\
import os, sqlite3, sys, time
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("PRAGMA journal_mode = WAL")
db.execute("PRAGMA synchronous = NORMAL")
db.execute("CREATE TABLE IF NOT EXISTS runs (id INTEGER PRIMARY KEY, argv TEXT, started REAL,"
           " finished REAL, code INTEGER)")
row = db.execute("INSERT INTO runs (argv, started) VALUES (?, ?)",
                 (repr(sys.argv[2:]), time.time())).lastrowid
pid = os.posix_spawn(sys.argv[2], sys.argv[2:], os.environ)
code = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
db.execute("UPDATE runs SET finished = ?, code = ? WHERE id = ?", (time.time(), code, row))
sys.exit(code)
"""
RECORDER_WAY = "python floor: a recorder (SQLite row before and after, posix_spawn)"


def exec_part(root: Path, options: argparse.Namespace) -> dict[str, list[float]]:
    cwd = root / "exec-cwd"
    write_tool(cwd / "registry", "noop", "1.0.0", "pass\n")
    home = root / "exec-home"
    env = environment(home)
    exec_argv = [TOOLRUN, "exec", "noop", "--"]
    subprocess.run(exec_argv, env=env, cwd=cwd, check=True, capture_output=True)  # installs
    tool = [PYTHON, str(home / "tools" / "noop" / "1.0.0" / "main.py")]
    ways: dict[str, tuple[list[str], dict[str, str]]] = {}
    if not missing("uv", options.uv):
        ways.update(uv_ways(root, options.uv))
    ways["python tool, directly"] = (tool, env)
    ways["toolrun exec"] = (exec_argv, env)
    recorder = root / "recorder.py"
    recorder.write_text(RECORDER, encoding="utf-8")
    ways[RECORDER_WAY] = ([PYTHON, str(recorder), str(root / "recorder.db"), *tool], env)
    for argv, way_env in ways.values():  # each works, and caches are warm
        subprocess.run(argv, env=way_env, cwd=cwd, check=True, capture_output=True)
    samples: dict[str, list[float]] = {way: [] for way in ways}
    for _ in range(options.rounds):
        for way, (argv, way_env) in ways.items():
            samples[way].append(wall(argv, env=way_env, cwd=cwd))
    print(f"  exec: {options.rounds} rounds; load {os.getloadavg()[0]:.2f}", flush=True)
    return samples


def report_exec(samples: dict[str, list[float]], repeats: int) -> bool:
    rounds = len(samples["toolrun exec"])
    print(
        f"\n3. toolrun exec against uvx: do-nothing Python tools, {rounds} rounds interleaved; "
        f"medians (in brackets: of {repeats} blocks of {rounds // repeats} rounds)"
    )
    for way, values in samples.items():
        line(way, median_ms(values), blocks(values, repeats), "ms")

    def overhead(way: str, direct: str) -> tuple[float, list[float]]:
        pairs = zip(blocks(samples[way], repeats), blocks(samples[direct], repeats), strict=True)
        whole = median_ms(samples[way]) - median_ms(samples[direct])
        return whole, [a - b for a, b in pairs]

    ours, ours_each = overhead("toolrun exec", "python tool, directly")
    line("toolrun exec: overhead", ours, ours_each, "ms")
    floor, floor_each = overhead(RECORDER_WAY, "python tool, directly")
    line("python floor: overhead", floor, floor_each, "ms")
    if "console script, directly" not in samples:
        print("uvx: not measured (uv missing); the target is not judged")
        return True
    ok = True
    for way in UVX_WAYS:
        theirs, theirs_each = overhead(way, "console script, directly")
        note = ""
        if way == UVX_WAYS[0]:
            ok = ours <= theirs
            note = f"target: toolrun's overhead <= this: {met(ok)}"
        line(f"{way}: overhead", theirs, theirs_each, "ms", note=note)
    return ok


# -- part 4: output --------------------------------------------------------------------------


def output_part(root: Path, repeats: int) -> dict[str, list[float]]:
    """As benchmarks/throughput.py: the same tool, piped to cat and run by toolrun, in turn."""
    cwd = root / "output-cwd"
    write_tool(cwd / "registry", "lines", "1.0.0", LINES_SCRIPT)
    (cwd / "toolchains").mkdir()
    (cwd / "toolchains" / "lines.yaml").write_text(
        f"toolchain:\n  - print: {{cmd: lines, args: ['{LINES}']}}\n"
    )
    home = root / "output-home"
    env = environment(home)
    toolrun_argv = [TOOLRUN, "run", "--plain", "lines"]
    subprocess.run(
        [TOOLRUN, "tool", "install", "lines"], env=env, cwd=cwd, check=True, capture_output=True
    )
    tool = home / "tools" / "lines" / "1.0.0" / "main.py"
    pipe = f"'{PYTHON}' '{tool}' {LINES} | cat >/dev/null"
    out: dict[str, list[float]] = {"pipe": [], "toolrun": [], "rss": []}
    for repeat in range(repeats):
        for side in in_order(["pipe", "toolrun"], repeat):
            if side == "pipe":
                started = time.perf_counter()
                subprocess.run(pipe, shell=True, check=True, env=env)
                out["pipe"].append(time.perf_counter() - started)
                continue
            seconds, rss = peak_rss_mib(toolrun_argv, env=env, cwd=cwd)
            out["toolrun"].append(seconds)
            out["rss"].append(rss)
            subprocess.run(
                [TOOLRUN, "history", "prune", "--keep", "0"],
                env=env,
                cwd=cwd,
                check=True,
                capture_output=True,
            )
        print(
            f"  output {repeat + 1}: pipe {out['pipe'][-1]:.2f} s, toolrun "
            f"{out['toolrun'][-1]:.2f} s, {out['rss'][-1]:.0f} MiB; load {os.getloadavg()[0]:.2f}",
            flush=True,
        )
    return out


def report_output(out: dict[str, list[float]]) -> bool:
    print(f"\n4. output: {LINES:,} lines, medians of {len(out['pipe'])} (each in brackets)")
    row("tool | cat >/dev/null", [v * 1000 for v in out["pipe"]], "ms", "{:.0f}")
    row("toolrun run --plain >/dev/null", [v * 1000 for v in out["toolrun"]], "ms", "{:.0f}")
    ratio = median_ms(out["toolrun"]) / median_ms(out["pipe"])
    each = [t / p for t, p in zip(out["toolrun"], out["pipe"], strict=True)]
    good_ratio = ratio <= TARGET_OUTPUT_RATIO
    line(
        "  ratio",
        ratio,
        each,
        "x",
        "{:.2f}",
        f"target <= {TARGET_OUTPUT_RATIO}x: {met(good_ratio)}",
    )
    worst = max(out["rss"])
    good_rss = worst * 1.048576 < TARGET_RSS_MB
    note = f"target < {TARGET_RSS_MB:.0f} MB, the worst {worst:.1f} MiB: {met(good_rss)}"
    row("  toolrun peak RSS", out["rss"], "MiB", note=note)
    return good_ratio and good_rss


# -- part 5: a one-step run against exec -----------------------------------------------------


def run_part(root: Path, rounds: int) -> dict[str, list[float]]:
    cwd = root / "run-cwd"
    (cwd / "registry" / "nothing" / "1.0.0").mkdir(parents=True)
    (cwd / "registry" / "nothing" / "1.0.0" / "tool.toml").write_text(NOTHING_TOML)
    write_tool(cwd / "registry", "noop", "1.0.0", "pass\n")
    (cwd / "toolchains").mkdir()
    env = environment(root / "run-home")
    ways: dict[str, list[str]] = {}
    for tool in RUN_TOOLS:
        (cwd / "toolchains" / f"once-{tool}.yaml").write_text(
            f"toolchain:\n  - {tool}: {{cmd: {tool}}}\n"
        )
        ways[f"{tool}: toolrun run --plain"] = [TOOLRUN, "run", "--plain", f"once-{tool}"]
        ways[f"{tool}: toolrun exec"] = [TOOLRUN, "exec", tool, "--"]
    for argv in ways.values():  # installs, and each works
        subprocess.run(argv, env=env, cwd=cwd, check=True, capture_output=True)
    samples: dict[str, list[float]] = {way: [] for way in ways}
    for round_ in range(rounds):
        for way in in_order(list(ways), round_):
            samples[way].append(wall(ways[way], env=env, cwd=cwd))
    print(f"  run: {rounds} rounds; load {os.getloadavg()[0]:.2f}", flush=True)
    return samples


def report_run(samples: dict[str, list[float]], repeats: int) -> bool:
    rounds = len(next(iter(samples.values())))
    print(
        f"\n5. a one-step toolrun run --plain against toolrun exec of the same tool, {rounds} "
        f"rounds interleaved; medians (in brackets: of {repeats} blocks of {rounds // repeats})"
    )
    ok = True
    for tool in RUN_TOOLS:
        run, exe = samples[f"{tool}: toolrun run --plain"], samples[f"{tool}: toolrun exec"]
        line(f"{RUN_TOOLS[tool]}: toolrun run --plain", median_ms(run), blocks(run, repeats), "ms")
        line(f"{RUN_TOOLS[tool]}: toolrun exec", median_ms(exe), blocks(exe, repeats), "ms")
        ratio = median_ms(run) / median_ms(exe)
        each = [a / b for a, b in zip(blocks(run, repeats), blocks(exe, repeats), strict=True)]
        note = "(for reference)"
        if tool == "nothing":
            ok = ratio <= TARGET_RUN_RATIO
            note = f"target <= {TARGET_RUN_RATIO}x: {met(ok)}"
        line("  ratio", ratio, each, "x", "{:.2f}", note)
    return ok


# -- the benchmark ---------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument(
        "--only", default=",".join(PARTS), help="comma-separated: " + ",".join(PARTS)
    )
    parser.add_argument("--repeats", type=int, default=REPEATS)
    parser.add_argument("--seconds", type=float, default=RATE_SECONDS, help="of the run rate")
    parser.add_argument("--submit-seconds", type=float, default=SUBMIT_SECONDS)
    parser.add_argument("--rounds", type=int, default=ROUNDS, help="of parts 3 and 5")
    parser.add_argument("--uv", default=shutil.which("uv"), help="the uv program (uvx beside it)")
    options = parser.parse_args()
    parts = {part.strip() for part in options.only.split(",") if part.strip()}
    if parts - set(PARTS):
        parser.error(f"--only: unknown {', '.join(sorted(parts - set(PARTS)))}")
    options.rounds = max(options.rounds, options.repeats)

    print(f"machine: {machine()}")
    print(f"load average at start: {load_average()}", flush=True)
    ok = True
    reports: list[Callable[[], bool]] = []
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        results = servers(root, parts, options)
        if results and "rate" in results["toolrun"][0]:
            reports.append(lambda: report_rate(results, options.seconds))
        elif "rate" in parts:
            reports.append(lambda: skipped("\n1. run rate: not measured (wrk missing)"))
        if results and "submit" in results["toolrun"][0]:
            reports.append(lambda: report_submit(results, options.submit_seconds))
        if "exec" in parts:
            samples = exec_part(root, options)
            reports.append(lambda: report_exec(samples, options.repeats))
        if "output" in parts:
            out = output_part(root, options.repeats)
            reports.append(lambda: report_output(out))
        if "run" in parts:
            runs = run_part(root, options.rounds)
            reports.append(lambda: report_run(runs, options.repeats))
    print(f"load average at end: {load_average()}")
    for report in reports:
        ok &= report()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
