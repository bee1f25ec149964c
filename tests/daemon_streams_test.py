"""How the daemon streams a run: the plain stream of several steps and its trailers, the
headers of a finished run, the SSE a caller without the admin scope sees, a run of another
process whose runner was killed, a client that hangs up; and the shapes themselves."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncGenerator, AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
from conftest import StartDaemon, WriteToolchain, run_toolrun

from toolrun.daemon.streams import (
    EXIT_CODE_HEADER,
    STATUS_HEADER,
    exit_code,
    public_event,
    sse_message,
    text_lines,
    with_keepalive,
)
from toolrun.runs.events import OUTPUT, RUN_FINISHED, STEP_STARTED, Event

TIMEOUT = httpx.Timeout(30.0)


def raw_get(url: str, path: str, headers: str = "") -> tuple[bytes, bytes]:
    """GET over a plain socket, as HTTP/1.1 with TE: trailers: (head, body as sent)."""
    parts = urlsplit(url)
    assert parts.hostname is not None and parts.port is not None
    with socket.create_connection((parts.hostname, parts.port), timeout=30) as connection:
        request = (
            f"GET {path} HTTP/1.1\r\nHost: {parts.netloc}\r\nTE: trailers\r\n{headers}"
            "Connection: close\r\n\r\n"
        )
        connection.sendall(request.encode())
        answer = b""
        while chunk := connection.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    return head, body


def unchunked(body: bytes) -> tuple[bytes, dict[str, str]]:
    """A chunked body's data, and the trailer fields after its last chunk."""
    data = b""
    while True:
        size_line, _, body = body.partition(b"\r\n")
        size = int(size_line, 16)
        if size == 0:
            break
        data, body = data + body[:size], body[size + 2 :]
    trailers = {}
    for line in body.decode().split("\r\n"):
        name, colon, value = line.partition(":")
        if colon:
            trailers[name.strip().lower()] = value.strip()
    return data, trailers


def sse_events(text: str) -> list[dict[str, str]]:
    events: list[dict[str, str]] = []
    for block in text.split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if line and line[0] != ":")
        if fields:
            events.append(fields)
    return events


def ended(client: httpx.Client, run_id: str, seconds: float = 30) -> dict[str, object]:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        run = client.get(f"/api/v1/runs/{run_id}").json()
        if run["status"] not in ("queued", "running"):
            return dict(run)
        time.sleep(0.05)
    raise AssertionError(f"run {run_id} never ended")


TWO_STEPS = (
    "toolchain:\n"
    "  - first: {cmd: probe, args: [echo, one, two]}\n"
    "  - second: {cmd: probe, args: [sleep, '30'], timeout: 0.5s}\n"
)


# -- through a real daemon ----------------------------------------------------------------------


def test_the_plain_stream_of_several_steps_is_prefixed_and_ends_with_the_runs_outcome(
    daemon: StartDaemon, toolchain: WriteToolchain
) -> None:
    toolchain("two", TWO_STEPS)
    server = daemon()
    parts = urlsplit(server.url)
    body = b"params: {}\n"
    with socket.create_connection((parts.hostname or "", parts.port or 0), timeout=30) as sock:
        sock.sendall(
            f"POST /cmd?toolchain=two HTTP/1.1\r\nHost: {parts.netloc}\r\nTE: trailers\r\n"
            f"Content-Type: application/yaml\r\nContent-Length: {len(body)}\r\n"
            "Connection: close\r\n\r\n".encode()
            + body
        )
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    head, _, chunked = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), head
    text, trailers = unchunked(chunked)
    lines = text.decode().splitlines()
    assert "first | one" in lines and "first | two" in lines, lines
    assert "second | sleeping" in lines, lines
    assert lines[-1].startswith("toolrun: ") and "second" in lines[-1], lines
    assert trailers[STATUS_HEADER.lower()] == "failed"
    assert trailers[EXIT_CODE_HEADER.lower()] == "1"  # the run's code: several steps ran
    run_id = next(
        line.split(b":", 1)[1].strip().decode()
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"x-toolrun-run-id:")
    )
    with httpx.Client(base_url=server.url, timeout=TIMEOUT) as client:
        ended(client, run_id)
        stored = client.get(f"/result/{run_id}")
        assert stored.text == text.decode()  # the same text, read back from the log
        assert stored.headers[STATUS_HEADER] == "failed"
        assert stored.headers[EXIT_CODE_HEADER] == "1"
    assert server.stop() == 0


def test_a_tool_killed_by_a_signal_exits_as_a_shell_says_it(daemon: StartDaemon) -> None:
    server = daemon()
    head, chunked = raw_get(server.url, "/cmd/probe/signal")
    _, trailers = unchunked(chunked)
    assert trailers == {"x-toolrun-status": "failed", "x-toolrun-exit-code": "137"}
    run_id = next(
        line.split(b":", 1)[1].strip().decode()
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"x-toolrun-run-id:")
    )
    stored = httpx.get(f"{server.url}/result/{run_id}", timeout=TIMEOUT)
    assert stored.headers[EXIT_CODE_HEADER] == "137"
    assert server.stop() == 0


def test_a_caller_without_the_admin_scope_sees_no_absolute_paths_in_the_events(
    daemon: StartDaemon,
) -> None:
    admin = run_toolrun("daemon", "token", "create", "boss", "--scope", "admin").stdout.strip()
    reader = run_toolrun("daemon", "token", "create", "eyes", "--scope", "read").stdout.strip()
    server = daemon()
    as_admin = {"Authorization": f"Bearer {admin}"}
    as_reader = {"Authorization": f"Bearer {reader}"}
    with httpx.Client(base_url=server.url, timeout=TIMEOUT, headers=as_admin) as client:
        run_id = client.get("/cmd/probe/echo/x?onlyid=true").text
        ended(client, run_id)

        def argv(headers: dict[str, str]) -> list[str]:
            text = client.get(f"/result/{run_id}?sse=true", headers=headers).text
            (started,) = [e for e in sse_events(text) if e["event"] == STEP_STARTED]
            return list(json.loads(started["data"])["argv"])

        full, shown = argv(as_admin), argv(as_reader)
    assert Path(full[0]).is_absolute() and full[1].endswith("/main.py")
    assert shown == [Path(full[0]).name, "main.py", "echo", "x"]
    assert server.stop() == 0


def test_a_run_of_a_process_killed_since_is_followed_to_a_synthesised_end(
    daemon: StartDaemon, toolchain: WriteToolchain, workdir: Path
) -> None:
    toolchain("drip", "toolchain:\n  - a: {cmd: probe, args: [drip, '100', '0.05']}\n")
    server = daemon()
    runner = subprocess.Popen(
        [sys.executable, "-m", "toolrun", "run", "drip", "--plain"],
        cwd=workdir,
        env=dict(os.environ),
        stdout=subprocess.PIPE,
        text=True,
    )
    assert runner.stdout is not None
    while not runner.stdout.readline().endswith("drip 0\n"):  # the run is going
        assert runner.poll() is None
    runner.send_signal(signal.SIGKILL)
    runner.wait()
    listed = run_toolrun("history", "--json", cwd=workdir)  # finds its runner dead
    (run,) = json.loads(listed.stdout)
    assert run["status"] == "interrupted"
    started = time.monotonic()
    text = httpx.get(f"{server.url}/result/{run['id']}?sse=true", timeout=TIMEOUT).text
    assert time.monotonic() - started < 5
    events = sse_events(text)
    assert events[0]["event"] == "run_started"
    assert [e["event"] for e in events].count(RUN_FINISHED) == 1
    assert events[-1]["event"] == RUN_FINISHED
    assert json.loads(events[-1]["data"])["status"] == "interrupted"
    ids = [int(e["id"]) for e in events]
    assert ids == sorted(set(ids))
    assert server.stop() == 0


def test_a_client_that_hangs_up_on_another_processes_run_leaves_the_daemon_well(
    daemon: StartDaemon, toolchain: WriteToolchain, workdir: Path
) -> None:
    toolchain("drip", "toolchain:\n  - a: {cmd: probe, args: [drip, '25', '0.04']}\n")
    server = daemon()
    runner = subprocess.Popen(
        [sys.executable, "-m", "toolrun", "run", "drip", "--plain"],
        cwd=workdir,
        env=dict(os.environ),
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert runner.stdout is not None
        while not runner.stdout.readline().endswith("drip 0\n"):  # the run is going
            assert runner.poll() is None
        (run,) = json.loads(run_toolrun("history", "--json", cwd=workdir).stdout)
        with httpx.Client(base_url=server.url, timeout=TIMEOUT) as client:
            for _ in range(2):  # twice: each hang-up ends only its own follower
                with client.stream("GET", f"/api/v1/runs/{run['id']}/events") as answer:
                    for line in answer.iter_lines():
                        if line.startswith("event: output"):
                            break  # hang up mid-run
            assert client.get("/healthz").status_code == 200
            text = client.get(f"/result/{run['id']}?sse=true").text  # to the end
        lines = [
            line
            for e in sse_events(text)
            if e["event"] == OUTPUT
            for line in json.loads(e["data"])["lines"]
        ]
        assert lines == [f"drip {i}" for i in range(25)]
    finally:
        runner.wait(30)
    assert server.stop() == 0


def test_a_finished_run_whose_log_lost_its_end_is_streamed_with_one_made_from_the_store(
    daemon: StartDaemon, workdir: Path, toolrun_home: Path
) -> None:
    local = run_toolrun("exec", "probe", "fail", "5", cwd=workdir)
    assert local.returncode == 5
    (run,) = json.loads(run_toolrun("history", "--json", cwd=workdir).stdout)
    log = toolrun_home / "runs" / run["id"] / "events.jsonl"
    kept = [line for line in log.read_text().splitlines() if '"run_finished"' not in line]
    log.write_text("\n".join(kept) + "\n")  # as a writer killed before its last line left it
    server = daemon()
    with httpx.Client(base_url=server.url, timeout=TIMEOUT) as client:
        text = client.get(f"/result/{run['id']}?sse=true").text
        events = sse_events(text)
        assert [e["event"] for e in events].count(RUN_FINISHED) == 1
        assert events[-1]["event"] == RUN_FINISHED
        finished = json.loads(events[-1]["data"])
        assert finished["status"] == "failed"
        assert int(events[-1]["id"]) == len(kept) + 1  # numbered after what the log kept
        with client.stream("GET", "/api/v1/events") as answer:  # the daemon-wide stream
            lines = answer.iter_lines()
            assert next(lines) == "event: hello"
            assert json.loads(next(lines).removeprefix("data: "))["status"] == "ok"
        assert client.get("/healthz").status_code == 200  # the hang-up left it answering
    assert server.stop() == 0


# -- the shapes ---------------------------------------------------------------------------------


def test_exit_codes_are_those_toolrun_exec_exits_with() -> None:
    assert exit_code("succeeded", 0, 0, single=True) == 0
    assert exit_code("failed", 1, 3, single=True) == 3
    assert exit_code("failed", 1, -9, single=True) == 137  # killed by SIGKILL
    assert exit_code("failed", 1, None, single=True) == 127  # could not start
    assert exit_code("timed_out", 124, None, single=True) == 124
    assert exit_code("failed", 1, 3, single=False) == 1
    assert exit_code(None, None, None, single=True) is None


def test_public_events_name_absolute_paths_by_their_file_names_only() -> None:
    argv = ["/usr/bin/python3", "C:\\Tools\\x\\tool.exe", "rel/path", "-o", 7, "D:/data/y.txt"]
    started = Event(3, 1.0, STEP_STARTED, "a", 1, {"argv": argv, "cwd": "/w"})
    shown = public_event(started)
    assert shown.data["argv"] == ["python3", "tool.exe", "rel/path", "-o", 7, "y.txt"]
    assert shown.data["cwd"] == "/w" and (shown.seq, shown.step) == (3, "a")
    assert started.data["argv"] == argv  # the shared event is left as it was
    output = Event(4, 1.0, OUTPUT, "a", 1, {"stream": "stdout", "lines": ["/etc/passwd"]})
    assert public_event(output) is output
    odd = Event(5, 1.0, STEP_STARTED, "a", 1, {"argv": "not a list"})
    assert public_event(odd) is odd


def test_an_sse_message_is_encoded_once_in_each_form() -> None:
    started = Event(7, 1.0, STEP_STARTED, "a", 1, {"argv": ["/opt/tool/bin/t", "x"]})
    private = sse_message(started)
    public = sse_message(started, private=False)
    assert private.startswith(b"id: 7\nevent: step_started\ndata: {")
    assert b"/opt/tool/bin/t" in private and b"/opt/tool" not in public
    assert json.loads(public.split(b"data: ", 1)[1])["argv"] == ["t", "x"]
    assert sse_message(started) is private and sse_message(started, private=False) is public
    assert started == Event(7, 1.0, STEP_STARTED, "a", 1, {"argv": ["/opt/tool/bin/t", "x"]})


def test_text_lines_pass_a_single_tools_output_as_it_is() -> None:
    output = Event(2, 1.0, OUTPUT, "a", 1, {"stream": "stdout", "lines": ["x", "[y]"]})
    assert text_lines(output, prefix=False) == b"x\n[y]\n"
    assert text_lines(Event(3, 1.0, STEP_STARTED, "a", 1, {}), prefix=False) == b""
    assert text_lines(output, prefix=True) == b"a | x\na | [y]\n"


def test_keepalives_fill_quiet_spells_and_a_consumer_that_leaves_cancels_the_wait() -> None:
    cancelled: list[bool] = []

    async def slow() -> AsyncIterator[str]:
        yield "first"
        try:
            await asyncio.sleep(0.25)
            yield "second"
            await asyncio.sleep(30)
            yield "never"
        except asyncio.CancelledError:
            cancelled.append(True)
            raise

    async def main() -> tuple[list[object], list[object]]:
        got: list[object] = []
        stream: AsyncGenerator[str] = with_keepalive(slow(), every=0.1, quiet="-")  # type: ignore[assignment]
        async for message in stream:
            got.append(message)
            if got.count("-") >= 4 and "second" in got:
                break
        await stream.aclose()  # the consumer left: the pending read is cancelled

        async def two() -> AsyncIterator[bytes]:
            yield b"a"
            await asyncio.sleep(0.15)
            yield b"b"

        plain = [message async for message in with_keepalive(two(), every=0.1)]
        return got, list(plain)

    got, plain = asyncio.run(main())
    assert got[0] == "first" and got.index("second") >= 2  # keep-alives while it slept
    assert set(got) == {"first", "second", "-"}
    assert plain == [b"a", b": keepalive\n\n", b"b"]  # an SSE comment unless told
    assert cancelled == [True]


# Found by the coverage work: the daemon followed such a run for ever (keepalives every 15 s).
def test_following_a_run_whose_runner_is_killed_meanwhile_ends_with_run_finished(
    daemon: StartDaemon, toolchain: WriteToolchain, workdir: Path
) -> None:
    toolchain("drip", "toolchain:\n  - a: {cmd: probe, args: [drip, '100', '0.05']}\n")
    server = daemon()
    runner = subprocess.Popen(
        [sys.executable, "-m", "toolrun", "run", "drip", "--plain"],
        cwd=workdir,
        env=dict(os.environ),
        stdout=subprocess.PIPE,
        text=True,
    )
    assert runner.stdout is not None
    while not runner.stdout.readline().endswith("drip 0\n"):
        assert runner.poll() is None
    run_id = httpx.get(f"{server.url}/api/v1/runs", timeout=30).json()["runs"][0]["id"]
    runner.send_signal(signal.SIGKILL)  # its runner dies; nothing else marks it interrupted
    runner.wait()
    kinds: list[str] = []
    deadline = time.monotonic() + 10
    with httpx.stream(
        "GET", f"{server.url}/result/{run_id}?sse=true", timeout=httpx.Timeout(30.0)
    ) as answer:
        for line in answer.iter_lines():
            if line.startswith("event: "):
                kinds.append(line[7:])
            if kinds[-1:] == ["run_finished"] or time.monotonic() > deadline:
                break
    assert kinds[-1:] == ["run_finished"], "the stream never ended: " + ", ".join(kinds[-3:])
    assert server.stop() == 0


def test_one_sweep_keeps_every_daemon_wide_stream_alive() -> None:
    """Readers of /api/v1/events get a keepalive from the daemon's one sweep (no timer of
    their own); a reader whose queue is full is skipped, not blocked on."""
    import types

    from toolrun.daemon.core import KEEPALIVE_MARK, Daemon

    async def main() -> tuple[list[object], int]:
        idle: asyncio.Queue[object] = asyncio.Queue(maxsize=4)
        full: asyncio.Queue[object] = asyncio.Queue(maxsize=1)
        full.put_nowait("a change")
        owner = types.SimpleNamespace(watchers={idle, full})
        sweep = asyncio.ensure_future(Daemon.keep_watchers_alive(owner, every=0.01))  # type: ignore[arg-type]
        await asyncio.sleep(0.05)
        sweep.cancel()
        got = [idle.get_nowait() for _ in range(idle.qsize())]
        return got, full.qsize()

    got, full_size = asyncio.run(main())
    assert got and all(item is KEEPALIVE_MARK for item in got)
    assert full_size == 1
