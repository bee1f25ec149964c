"""The seed's endpoints on a real `toolrun daemon`: /cmd, /result/<id>, /result/help."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from conftest import StartDaemon, WriteToolchain, run_toolrun

TIMEOUT = httpx.Timeout(30.0)


def wait_ended(client: httpx.Client, run_id: str, seconds: float = 30) -> dict[str, object]:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        run = client.get(f"/api/v1/runs/{run_id}").json()
        if run["status"] not in ("queued", "running", "paused"):
            return dict(run)
        time.sleep(0.05)
    raise AssertionError(f"run {run_id} never ended")


def sse_events(lines: list[str]) -> list[dict[str, str]]:
    """Parse Server-Sent Events from response lines."""
    events: list[dict[str, str]] = []
    current: dict[str, str] = {}
    for line in lines:
        if not line:
            if current:
                events.append(current)
            current = {}
        elif not line.startswith(":"):
            name, _, value = line.partition(": ")
            current[name] = value
    return events


def test_get_cmd_streams_the_tools_output_and_records_the_run(
    daemon: StartDaemon, toolrun_home: Path
) -> None:
    server = daemon()
    with httpx.Client(base_url=server.url, timeout=TIMEOUT) as client:
        answer = client.get("/cmd/probe/echo/hello%2Fworld/second arg")
        assert answer.status_code == 200
        assert answer.text == "hello/world\nsecond arg\n"
        assert answer.headers["content-type"].startswith("text/plain")
        run_id = answer.headers["x-toolrun-run-id"]
        run = wait_ended(client, run_id)
    assert run["status"] == "succeeded" and run["origin"] == "daemon"
    assert run["requester"] == "127.0.0.1"
    listed = run_toolrun("history", "--json")
    assert [r["id"] for r in json.loads(listed.stdout)] == [run_id]


def test_a_version_in_the_path_picks_that_version(daemon: StartDaemon) -> None:
    server = daemon()
    with httpx.Client(base_url=server.url, timeout=TIMEOUT) as client:
        run_id = client.get("/cmd/probe@1.0.0/echo/x").headers["x-toolrun-run-id"]
        run = client.get(f"/api/v1/runs/{run_id}").json()
    assert run["steps"][0]["version"] == "1.0.0"


def test_curl_streams_output_as_it_is_produced(daemon: StartDaemon) -> None:
    server = daemon()
    started = time.monotonic()
    process = subprocess.Popen(
        ["curl", "-sN", f"{server.url}/cmd/probe/drip/3/0.4"], stdout=subprocess.PIPE, text=True
    )
    assert process.stdout is not None
    first = process.stdout.readline()
    first_at = time.monotonic() - started
    rest = process.stdout.read()
    assert process.wait(30) == 0
    assert first == "drip 0\n" and rest == "drip 1\ndrip 2\n"
    assert first_at < 0.8 * (time.monotonic() - started)  # the first line came before the end


def test_onlyid_answers_202_at_once_and_result_follows_the_run(daemon: StartDaemon) -> None:
    server = daemon()
    with httpx.Client(base_url=server.url, timeout=TIMEOUT) as client:
        answer = client.get("/cmd/probe/sleep/1?onlyid=true")
        assert answer.status_code == 202
        run_id = answer.text
        assert answer.headers["location"] == f"/result/{run_id}"
        pending = client.get(f"/result/{run_id}")
        assert pending.status_code == 202
        assert pending.json()["status"] in ("queued", "running")
        wait_ended(client, run_id)
        done = client.get(f"/result/{run_id}")
    assert done.status_code == 200
    assert done.text == "sleeping\nwoke\n"


def test_result_is_404_for_unknown_and_malformed_ids(daemon: StartDaemon) -> None:
    server = daemon()
    with httpx.Client(base_url=server.url, timeout=TIMEOUT) as client:
        for path in ("/result/20990101000000-1", "/result/..%2F..%2Fetc", "/result/not-an-id"):
            answer = client.get(path)
            assert answer.status_code == 404, path
            assert answer.json()["error"] == "not_found"


def test_post_takes_yaml_by_default_json_by_flag_or_content_type(daemon: StartDaemon) -> None:
    server = daemon()
    with httpx.Client(base_url=server.url, timeout=TIMEOUT) as client:
        yaml_body = "cmd: probe\nversion: 2.0.0\nargs: [env, GREETING]\nenv:\n  - GREETING:hi\n"
        assert client.post("/cmd", content=yaml_body).text == "GREETING=hi\n"
        json_body = json.dumps({"cmd": "probe", "args": ["echo", "j"], "env": {"A": "1"}})
        assert client.post("/cmd?body=json", content=json_body).text == "j\n"
        answer = client.post(
            "/cmd", content=json_body, headers={"content-type": "application/json"}
        )
        assert answer.text == "j\n"


def test_post_with_toolchain_runs_it_with_the_bodys_params(
    daemon: StartDaemon, toolchain: WriteToolchain
) -> None:
    toolchain(
        "greet",
        "params:\n  who: {type: string, default: nobody}\n"
        "toolchain:\n"
        "  - first: {cmd: probe, args: [echo, 'hello ${{ params.who }}']}\n"
        "  - second: {cmd: probe, args: [echo, done], needs: [first]}\n",
    )
    server = daemon()
    with httpx.Client(base_url=server.url, timeout=TIMEOUT) as client:
        answer = client.post("/cmd?toolchain=greet", content="params: {who: team}")
        assert answer.status_code == 200
        assert "first | hello team" in answer.text
        assert "second | done" in answer.text
        run = client.get(f"/api/v1/runs/{answer.headers['x-toolrun-run-id']}").json()
    assert run["toolchain"] == "greet" and run["params"] == {"who": "team"}


def test_sse_carries_every_event_with_ids_in_order(daemon: StartDaemon) -> None:
    server = daemon()
    with (
        httpx.Client(base_url=server.url, timeout=TIMEOUT) as client,
        client.stream("GET", "/cmd/probe/echo/a/b?sse=true") as answer,
    ):
        assert answer.headers["content-type"].startswith("text/event-stream")
        events = sse_events(list(answer.iter_lines()))
    ids = [int(e["id"]) for e in events]
    assert ids == list(range(1, len(ids) + 1))
    assert events[-1]["event"] == "run_finished"
    lines = [
        line for e in events if e["event"] == "output" for line in json.loads(e["data"])["lines"]
    ]
    assert lines == ["a", "b"]


def test_an_sse_client_that_reconnects_gets_every_line_exactly_once(daemon: StartDaemon) -> None:
    server = daemon()
    with httpx.Client(base_url=server.url, timeout=TIMEOUT) as client:
        run_id = client.get("/cmd/probe/drip/30/0.05?onlyid=true").text
        seen: list[str] = []
        last = "0"
        for attempt in range(3):  # drop the connection twice mid-run, then read to the end
            headers = {"Last-Event-ID": last}
            with client.stream("GET", f"/result/{run_id}?sse=true", headers=headers) as answer:
                block: list[str] = []
                taken = 0
                for line in answer.iter_lines():
                    block.append(line)
                    if line:
                        continue
                    for event in sse_events(block):
                        last = event["id"]
                        if event["event"] == "output":
                            seen.extend(json.loads(event["data"])["lines"])
                        taken += 1
                    block = []
                    if attempt < 2 and taken >= 8:
                        break
    assert seen == [f"drip {i}" for i in range(30)]


def test_result_help_is_the_embedded_manual(daemon: StartDaemon) -> None:
    server = daemon()
    answer = httpx.get(f"{server.url}/result/help", timeout=TIMEOUT)
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/html")
    assert "<h1>" in answer.text and "/cmd" in answer.text and "onlyid" in answer.text
    assert "http://" not in answer.text.split("<body>")[0]  # no external assets


def test_a_client_that_disconnects_leaves_the_run_going(daemon: StartDaemon) -> None:
    server = daemon()
    with httpx.Client(base_url=server.url, timeout=TIMEOUT) as client:
        with client.stream("GET", "/cmd/probe/sleep/1") as answer:
            run_id = answer.headers["x-toolrun-run-id"]
            next(answer.iter_lines())  # "sleeping", then hang up
        run = wait_ended(client, run_id)
        assert run["status"] == "succeeded"
        assert client.get(f"/result/{run_id}").text == "sleeping\nwoke\n"


# -- bad input --------------------------------------------------------------------------------

BAD_POSTS = [
    ("/cmd", "cmd: [oops", 400, "body"),
    ("/cmd", "- a list", 400, "body"),
    ("/cmd?body=json", "{not json", 400, "body"),
    ("/cmd?body=xml", "cmd: probe", 400, "body"),
    ("/cmd", "version: 1.0.0", 400, "cmd"),
    ("/cmd", "cmd: nope", 404, "cmd"),
    ("/cmd", "cmd: ../probe", 400, "cmd"),
    ("/cmd", "cmd: probe\nversion: 9.9.9", 404, "cmd"),
    ("/cmd", "cmd: probe\nversion: '>>1'", 400, "version"),
    ("/cmd", "cmd: probe\nargs: {a: 1}", 400, "args"),
    ("/cmd", "cmd: probe\nargs: [cwd, /etc/passwd]", 400, "args"),
    ("/cmd", "cmd: probe\nargs: [read, ../../secret]", 400, "args"),
    ("/cmd", "cmd: probe\nargs: ['--out=C:\\\\x']", 400, "args"),
    ("/cmd", "cmd: probe\nargs: [read, '-o/etc/passwd']", 400, "args"),
    ("/cmd", "cmd: probe\nargs: [read, '--meta:/etc/passwd']", 400, "args"),
    ("/cmd", "cmd: probe\nargs: [read, '@/etc/passwd']", 400, "args"),
    ("/cmd", "cmd: probe\nargs: [read, 'a,/etc/passwd']", 400, "args"),
    ("/cmd", "cmd: probe\nargs: [read, 'file:///etc/passwd']", 400, "args"),
    ("/cmd", "cmd: probe\nargs: [read, '@../../x']", 400, "args"),
    ("/cmd", "cmd: probe\nenv: {LD_PRELOAD: /x.so}", 400, "env.LD_PRELOAD"),
    ("/cmd?body=json", '{"cmd": "probe", "args": ["echo", "a\\u0000b"]}', 400, "args"),
    ("/cmd", "cmd: probe\nenv: {PATH: /tmp}", 400, "env.PATH"),
    ("/cmd", "cmd: probe\nenv: {GIT_SSH_COMMAND: x}", 400, "env.GIT_SSH_COMMAND"),
    ("/cmd", "cmd: probe\ncolour: red", 400, "colour"),
    ("/cmd", "cmd: probe\ntimeout: soon", 400, "timeout"),
    ("/cmd?onlyid=maybe", "cmd: probe", 400, "onlyid"),
    ("/cmd?toolchain=nope", "", 404, "toolchain"),
    ("/cmd?toolchain=/etc/passwd.yaml", "", 400, "toolchain"),
    ("/cmd?toolchain=greet", "params: {whom: x}", 400, "params.whom"),
    ("/cmd?toolchain=greet", "params: {who: /etc}", 400, "params.who"),
]


@pytest.mark.parametrize(("path", "body", "status", "field"), BAD_POSTS)
def test_bad_requests_get_a_4xx_naming_the_problem(
    daemon: StartDaemon, toolchain: WriteToolchain, path: str, body: str, status: int, field: str
) -> None:
    toolchain(
        "greet", "params:\n  who: {type: string}\ntoolchain:\n  - a: {cmd: probe, args: [echo]}\n"
    )
    server = daemon()
    answer = httpx.post(f"{server.url}{path}", content=body, timeout=TIMEOUT)
    assert answer.status_code == status, answer.text
    error = answer.json()
    assert error["message"]
    assert error.get("field") == field, error
    # Nothing was recorded for a refused request.
    assert httpx.get(f"{server.url}/api/v1/runs", timeout=TIMEOUT).json()["runs"] == []


def test_a_body_over_1_mib_is_refused_with_413(daemon: StartDaemon) -> None:
    server = daemon()
    big = "cmd: probe\nargs: [echo, '" + "x" * (1024 * 1024) + "']\n"
    answer = httpx.post(f"{server.url}/cmd", content=big, timeout=TIMEOUT)
    assert answer.status_code == 413
    assert answer.json()["error"] == "too_large"

    def chunks() -> Iterator[bytes]:
        for _ in range(40):
            yield b"#" * 65536  # no Content-Length: refused while reading

    answer = httpx.post(f"{server.url}/cmd", content=chunks(), timeout=TIMEOUT)
    assert answer.status_code == 413


def test_unknown_paths_and_methods_answer_json(daemon: StartDaemon) -> None:
    server = daemon()
    with httpx.Client(base_url=server.url, timeout=TIMEOUT) as client:
        missing = client.get("/nowhere")
        assert missing.status_code == 404 and missing.json()["error"] == "not_found"
        wrong = client.delete("/cmd")
        assert wrong.status_code == 405 and wrong.json()["error"] == "method_not_allowed"
        empty = client.get("/cmd/")
        assert empty.status_code == 400 and empty.json()["field"] == "cmd"
        nul = client.get("/cmd/probe/echo/a%00b")
        assert nul.status_code == 400 and nul.json()["field"] == "args"


def test_the_log_names_every_request_and_never_a_token(
    daemon: StartDaemon, toolrun_home: Path
) -> None:
    created = run_toolrun("daemon", "token", "create", "ci")
    secret = created.stdout.strip()
    server = daemon()
    httpx.get(f"{server.url}/healthz", headers={"Authorization": f"Bearer {secret}"})
    httpx.get(f"{server.url}/cmd/probe/echo/x", headers={"Authorization": f"Bearer {secret}"})
    assert server.stop() == 0
    requests = server.events("request")
    assert [(r["method"], r["path"], r["status"]) for r in requests] == [
        ("GET", "/healthz", 200),
        ("GET", "/cmd/probe/echo/x", 200),
    ]
    assert requests[1]["caller"] == "ci"
    assert {r["status"] for r in server.events("run")} >= {"queued", "running", "succeeded"}
    assert secret not in "".join(server.raw)


def test_a_run_of_another_process_is_followed_as_its_log_grows(
    daemon: StartDaemon, workdir: Path
) -> None:
    server = daemon()
    import os
    import sys

    local = subprocess.Popen(
        [sys.executable, "-m", "toolrun", "exec", "probe", "drip", "8", "0.1"],
        cwd=workdir,
        env=dict(os.environ),
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert local.stdout is not None
        assert local.stdout.readline() == "drip 0\n"  # the run is going
        run_id = json.loads(run_toolrun("history", "--json").stdout)[0]["id"]
        with httpx.stream(
            "GET", f"{server.url}/result/{run_id}?sse=true", timeout=TIMEOUT
        ) as answer:
            events = sse_events(list(answer.iter_lines()))
    finally:
        local.wait(30)
    lines = [
        line for e in events if e["event"] == "output" for line in json.loads(e["data"])["lines"]
    ]
    assert lines == [f"drip {i}" for i in range(8)]
    assert events[-1]["event"] == "run_finished"


HOSTILE = [
    # (method, path, body, status, field): each once caught the daemon out (a 500 or a freeze).
    ("POST", "/cmd", "a0: &a0 [x]\na1: [*a0, *a0]\ncmd: probe\n", 400, "body"),
    ("POST", "/cmd", "cmd: probe\nargs: &a [*a]\n", 400, "body"),
    ("POST", "/cmd", "cmd: !!binary aGVsbG8=\n", 400, "body"),
    ("POST", "/cmd", "cmd: probe\nargs: !!set {a, b}\n", 400, "body"),
    ("POST", "/cmd", "[" * 20000, 400, "body"),
    ("POST", "/cmd?body=json", "[" * 100000, 400, "body"),
    ("POST", "/cmd", "cmd: probe\nargs: [1" + "0" * 5000 + "]\n", 400, "body"),
    ("POST", "/cmd", "cmd: probe\ntimeout: 1" + "0" * 400 + "\n", 400, "timeout"),
    ("POST", "/cmd", "cmd: probe\ntimeout: .nan\n", 400, "timeout"),
    ("POST", "/cmd", "cmd: probe\ntimeout: .inf\n", 400, "timeout"),
    ("POST", "/cmd", "cmd: " + "a" * 300 + "\n", 400, "cmd"),
    ("POST", "/cmd", "cmd: probe\nversion: '" + "1" * 5000 + "'\n", 400, "version"),
    ("POST", "/cmd", "cmd: probe\nargs: [" + ",".join(["a"] * 10001) + "]\n", 400, "args"),
    ("POST", "/cmd", "{1: 2}", 400, "1"),
    ("POST", "/cmd", "cmd: probe\nparams: {a: 1}\n", 400, "params"),
    ("POST", "/cmd?toolchain=greet", "cmd: probe\n", 400, "cmd"),
    ("POST", "/cmd?toolchain=greet", "args: [a]\n", 400, "args"),
    ("POST", "/cmd?toolchain=" + "t" * 300, "", 400, "toolchain"),
    ("GET", "/cmd/" + "a" * 300, None, 400, "cmd"),
    ("GET", "/cmd/probe@" + "1" * 5000, None, 400, "version"),
    ("GET", "/cmd/probe@/echo", None, 400, "version"),
    ("GET", "/cmd/probe/echo/%FF%FE", None, 400, "args"),
    ("HEAD", "/cmd/probe/echo/x", None, 405, None),
    ("HEAD", "/api/v1/events", None, 405, None),
    ("GET", "/api/v1/runs?page=" + "9" * 30, None, 400, "page"),
    ("GET", "/api/v1/runs?since=nan", None, 400, "since"),
    ("GET", "/api/v1/runs/", None, 404, None),
    ("GET", "/api/v1/tools?available=maybe", None, 400, "available"),
]


def test_hostile_requests_get_a_4xx_and_the_daemon_keeps_answering(
    daemon: StartDaemon, toolchain: WriteToolchain
) -> None:
    toolchain(
        "greet", "params:\n  who: {type: string}\ntoolchain:\n  - a: {cmd: probe, args: [echo]}\n"
    )
    server = daemon()
    with httpx.Client(base_url=server.url, timeout=TIMEOUT) as client:
        for method, path, body, status, field in HOSTILE:
            started = time.monotonic()
            answer = client.request(method, path, content=body)
            assert answer.status_code == status, (method, path[:60], answer.text[:300])
            assert time.monotonic() - started < 5, (method, path[:60])
            if method != "HEAD":
                error = answer.json()
                assert error["message"] and error.get("field") == field, (path[:60], error)
        assert client.get("/api/v1/runs").json()["runs"] == []
        done = client.get("/cmd/probe/echo/still", params={"onlyid": "true"})
        assert done.status_code == 202
    assert not server.events("server"), server.events("server")  # no error the app let through


def test_a_body_framed_twice_is_refused(daemon: StartDaemon) -> None:
    import socket

    server = daemon()
    host, port = server.url.removeprefix("http://").split(":")
    request = (
        b"POST /cmd HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 10\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n5\r\ncmd: \r\n0\r\n\r\n"
    )
    with socket.create_connection((host, int(port)), timeout=10) as connection:
        connection.sendall(request)
        answer = b""
        while b"not both" not in answer and b'"}' not in answer:
            chunk = connection.recv(65536)
            if not chunk:
                break
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 400") and b"not both" in answer, answer


def test_a_large_yaml_body_does_not_hold_up_other_requests(daemon: StartDaemon) -> None:
    """YAML is parsed in a worker thread: /healthz answers meanwhile."""
    import threading

    server = daemon()
    body = "cmd: probe\nargs: [" + ",".join(["a"] * 200_000) + "]\n"  # ~600 KB
    answers: list[httpx.Response] = []
    sender = threading.Thread(
        target=lambda: answers.append(httpx.post(f"{server.url}/cmd", content=body, timeout=60))
    )
    sender.start()
    slowest = 0.0
    with httpx.Client(base_url=server.url, timeout=TIMEOUT) as client:
        while sender.is_alive():
            started = time.monotonic()
            assert client.get("/healthz").status_code == 200
            slowest = max(slowest, time.monotonic() - started)
            time.sleep(0.02)
    sender.join()
    assert answers[0].status_code == 400 and answers[0].json()["field"] == "args"
    assert slowest < 1.0, slowest
