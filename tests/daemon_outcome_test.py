"""A caller of the daemon always learns how a run ended, and a body means one thing only."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import time
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from conftest import StartDaemon, run_toolrun

TIMEOUT = httpx.Timeout(30.0)


def ended(client: httpx.Client, run_id: str, seconds: float = 30) -> dict[str, object]:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        run = client.get(f"/api/v1/runs/{run_id}").json()
        if run["status"] not in ("queued", "running"):
            return dict(run)
        time.sleep(0.05)
    raise AssertionError(f"run {run_id} never ended")


def raw_get(url: str, path: str, headers: str = "") -> tuple[bytes, bytes]:
    """GET over a plain socket, as HTTP/1.1 with TE: trailers: (head, body as sent)."""
    parts = urlsplit(url)
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


def trailers_of(body: bytes) -> dict[str, str]:
    """The trailer fields after a chunked body's last chunk."""
    _, _, tail = body.rpartition(b"\r\n0\r\n")
    fields = {}
    for line in tail.decode().split("\r\n"):
        name, colon, value = line.partition(":")
        if colon:
            fields[name.strip().lower()] = value.strip()
    return fields


# -- how it ended, in the plain stream --------------------------------------------------------


def test_a_tool_that_cannot_start_says_so_in_the_stream_the_result_and_the_trailers(
    daemon: StartDaemon,
) -> None:
    server = daemon()
    too_long = {"cmd": "probe", "args": ["echo", "x" * 200_000]}  # past Linux's 128 KiB an arg
    with httpx.Client(base_url=server.url, timeout=TIMEOUT) as client:
        answer = client.post("/cmd?body=json", json=too_long)
        assert answer.status_code == 200
        last = answer.text.splitlines()[-1]
        assert last.startswith("toolrun: cannot start") and "Argument list too long" in last
        run_id = answer.headers["x-toolrun-run-id"]
        assert ended(client, run_id)["status"] == "failed"
        result = client.get(f"/result/{run_id}")
        assert result.text.splitlines()[-1] == last
        assert result.headers["x-toolrun-status"] == "failed"
        assert result.headers["x-toolrun-exit-code"] == "127"


def test_trailers_carry_the_status_and_the_tools_exit_code(daemon: StartDaemon) -> None:
    server = daemon()
    head, body = raw_get(server.url, "/cmd/probe/fail/3")
    assert b"200 OK" in head.split(b"\r\n")[0]
    assert (
        b"trailer: X-Toolrun-Status, X-Toolrun-Exit-Code"
        in head.lower().replace(b"x-toolrun", b"X-Toolrun")
        or b"X-Toolrun-Status" in head
    )
    assert b"failing" in body
    assert trailers_of(body) == {"x-toolrun-status": "failed", "x-toolrun-exit-code": "3"}
    head, body = raw_get(server.url, "/cmd/probe/echo/fine")
    assert trailers_of(body) == {"x-toolrun-status": "succeeded", "x-toolrun-exit-code": "0"}
    # curl shows them too, with --raw.
    shown = subprocess.run(
        ["curl", "-s", "--raw", "-H", "TE: trailers", f"{server.url}/cmd/probe/fail/4"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert "x-toolrun-exit-code: 4" in shown.stdout
    # Without TE: trailers, none are sent and the stream is as before.
    plain = httpx.get(f"{server.url}/cmd/probe/fail/3", timeout=TIMEOUT)
    assert plain.text == "failing\n"


def test_buffered_mode_maps_the_run_to_the_status_code(daemon: StartDaemon) -> None:
    server = daemon()
    with httpx.Client(base_url=server.url, timeout=TIMEOUT) as client:
        ok = client.get("/cmd/probe/echo/done?mode=buffered")
        assert (ok.status_code, ok.text) == (200, "done\n")
        assert ok.headers["x-toolrun-status"] == "succeeded"
        failed = client.get("/cmd/probe/fail/3?mode=buffered")
        assert (failed.status_code, failed.text) == (500, "failing\n")
        assert failed.headers["x-toolrun-exit-code"] == "3"
        body = {"cmd": "probe", "args": ["sleep", "30"], "timeout": "1s"}
        slow = client.post("/cmd?body=json&mode=buffered", json=body)
        assert slow.status_code == 504 and slow.headers["x-toolrun-status"] == "timed_out"
        assert slow.text.startswith("sleeping\n")
        assert slow.text.splitlines()[-1].startswith("toolrun: run timed out after 1s")
        wrong = client.get("/cmd/probe/echo/x?mode=later")
        assert wrong.status_code == 400 and wrong.json()["field"] == "mode"


def test_the_output_cap_and_a_cancel_are_said_last(daemon: StartDaemon, toolrun_home: Path) -> None:
    assert run_toolrun("config", "set", "output_cap", "1KB").returncode == 0
    server = daemon()
    with httpx.Client(base_url=server.url, timeout=TIMEOUT) as client:
        capped = client.get("/cmd/probe/lines/1000")
        assert capped.text.splitlines()[-1].startswith("toolrun: output truncated")
        started = client.get("/cmd/probe/sleep/30?onlyid=true").text
        client.post(f"/api/v1/runs/{started}/cancel")
        ended(client, started)
        assert client.get(f"/result/{started}").text.endswith("toolrun: run cancelled\n")


def test_a_missing_system_program_is_a_404_before_anything_runs(
    daemon: StartDaemon, workdir: Path
) -> None:
    folder = workdir / "registry" / "ghost" / "1.0.0"
    folder.mkdir(parents=True)
    (folder / "tool.toml").write_text(
        'name = "ghost"\nversion = "1.0.0"\nkind = "system"\n'
        'command = ["toolrun-no-such-program"]\n[files]\n'
    )
    server = daemon()
    answer = httpx.get(f"{server.url}/cmd/ghost/x", timeout=TIMEOUT)
    assert answer.status_code == 404
    assert "toolrun-no-such-program: not found on PATH" in answer.json()["message"]
    assert httpx.get(f"{server.url}/api/v1/runs", timeout=TIMEOUT).json()["runs"] == []
    local = run_toolrun("exec", "ghost", cwd=workdir)
    assert local.returncode == 4 and "not found on PATH" in local.stderr


# -- a run whose daemon was killed ---------------------------------------------------------------


def test_every_replay_of_an_interrupted_run_ends_with_run_finished(daemon: StartDaemon) -> None:
    first = daemon()
    run_id = httpx.get(f"{first.url}/cmd/probe/drip/100/0.1?onlyid=true", timeout=TIMEOUT).text
    time.sleep(1)
    first.process.send_signal(signal.SIGKILL)
    first.process.wait()
    second = daemon()  # its start marks the run interrupted and closes its log
    with httpx.Client(base_url=second.url, timeout=httpx.Timeout(10.0)) as client:
        assert client.get(f"/api/v1/runs/{run_id}").json()["status"] == "interrupted"
        text = client.get(f"/result/{run_id}").text
        assert text.startswith("drip 0\n")
        assert text.splitlines()[-1].startswith("toolrun: run interrupted:")
        for path in (
            f"/result/{run_id}?sse=true",
            f"/api/v1/runs/{run_id}/events",
            f"/api/v1/runs/{run_id}/events?follow=false",
        ):
            started = time.monotonic()
            events = [
                line for line in client.get(path).text.splitlines() if line.startswith("event:")
            ]
            assert events[-1] == "event: run_finished", path
            assert events.count("event: run_finished") == 1
            assert time.monotonic() - started < 5  # it ended: no client waits or reconnects
        ids = [
            int(line[4:])
            for line in client.get(f"/api/v1/runs/{run_id}/events").text.splitlines()
            if line.startswith("id: ")
        ]
        # Resuming after the last event gives nothing more, not a second end.
        again = client.get(f"/api/v1/runs/{run_id}/events", headers={"Last-Event-ID": str(ids[-1])})
        assert "event:" not in again.text


def test_a_log_whose_end_was_never_written_still_ends_with_run_finished(
    daemon: StartDaemon, toolrun_home: Path
) -> None:
    server = daemon()
    with httpx.Client(base_url=server.url, timeout=TIMEOUT) as client:
        run_id = client.get("/cmd/probe/echo/x").headers["x-toolrun-run-id"]
        ended(client, run_id)
        log = toolrun_home / "runs" / run_id / "events.jsonl"
        kept = [line for line in log.read_text().splitlines() if '"run_finished"' not in line]
        log.write_text("\n".join(kept) + "\n")  # as an older toolrun left it
        events = client.get(f"/api/v1/runs/{run_id}/events?follow=false").text
        assert events.count("event: run_finished") == 1
        assert '"recovered":true' in events


# -- strict bodies ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "kind", "field", "words"),
    [
        ('{"cmd": "probe", "cmd": "nope"}', "json", "cmd", "twice"),
        ("cmd: probe\ncmd: nope\n", "yaml", "cmd", "twice"),
        ('{"cmd": "probe", "timeout": NaN}', "json", "body", "NaN"),
        ('{"cmd": "probe", "timeout": Infinity}', "json", "body", "Infinity"),
        ('{"cmd": "probe", "version": 2.0}', "json", "version", "quote it"),
        ('{"cmd": "probe", "args": ["echo", 1]}', "json", "args[1]", "string"),
        ('{"cmd": "probe", "env": {"GREETING": 1}}', "json", "env.GREETING", "string"),
        ('{"cmd": "probe", "env": {"GREETING": true}}', "json", "env.GREETING", "boolean"),
        ("cmd: probe\nenv:\n  -GREETING:hi\n", "yaml", "env", "- GREETING: hi"),
        ('{"cmd": "probe", "timeout": 0.5e999}', "json", "timeout", "finite"),
    ],
)
def test_a_body_that_could_mean_two_things_is_refused(
    daemon: StartDaemon, body: str, kind: str, field: str, words: str
) -> None:
    server = daemon()
    answer = httpx.post(f"{server.url}/cmd?body={kind}", content=body, timeout=TIMEOUT)
    assert answer.status_code == 400, answer.text
    assert answer.json()["field"] == field
    assert words in answer.json()["message"]
    assert httpx.get(f"{server.url}/api/v1/runs", timeout=TIMEOUT).json()["runs"] == []


def test_a_yaml_number_keeps_its_digits(daemon: StartDaemon) -> None:
    server = daemon()
    with httpx.Client(base_url=server.url, timeout=TIMEOUT) as client:
        # The seed's own form: version 2.0 (a number in YAML) is the version "2.0", a prefix.
        ran = client.post("/cmd", content="cmd: probe\nversion: 2.0\nargs: [echo, 10]\n")
        assert ran.text == "10\n"
        assert (
            client.get(f"/api/v1/runs/{ran.headers['x-toolrun-run-id']}").json()["steps"][0][
                "version"
            ]
            == "2.0.0"
        )
        missing = client.post("/cmd", content="cmd: probe\nversion: 1.10\n")
        assert missing.status_code == 404 and "'1.10'" in missing.json()["message"]


# -- what a caller without the admin scope is shown ---------------------------------------------


def test_server_paths_are_shown_only_to_the_admin_scope(
    daemon: StartDaemon, toolrun_home: Path
) -> None:
    reader = run_toolrun("daemon", "token", "create", "qa", "--scope", "run").stdout.strip()
    admin = run_toolrun("daemon", "token", "create", "ops", "--scope", "admin").stdout.strip()
    server = daemon()

    def get(path: str, token: str) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"}
        return httpx.get(f"{server.url}{path}", headers=headers, timeout=TIMEOUT)

    run_id = get("/cmd/probe/echo/x", reader).headers["x-toolrun-run-id"]
    shown = get("/api/v1/tools", reader).json()["installed"]
    assert shown and all("path" not in tool and "source" not in tool for tool in shown)
    assert all("path" in tool for tool in get("/api/v1/tools", admin).json()["installed"])
    events = get(f"/api/v1/runs/{run_id}/events?follow=false", reader).text
    data = [json.loads(line[6:]) for line in events.splitlines() if line.startswith("data: ")]
    (started,) = [event for event in data if event["kind"] == "step_started"]
    assert started["argv"][1:] == ["main.py", "echo", "x"]
    assert str(toolrun_home) not in events
    full = get(f"/api/v1/runs/{run_id}/events?follow=false", admin).text
    assert str(toolrun_home) in full


# -- TLS from the remote CLI ---------------------------------------------------------------------


def _certificate(folder: Path) -> tuple[Path, Path]:
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key


def test_the_remote_cli_trusts_a_private_ca_when_told(
    daemon: StartDaemon, tmp_path: Path, workdir: Path
) -> None:
    cert, key = _certificate(tmp_path)
    server = daemon("--tls-cert", str(cert), "--tls-key", str(key))
    untrusted = run_toolrun("--remote", server.url, "history", "--json", cwd=workdir)
    assert untrusted.returncode != 0 and "certificate" in untrusted.stderr.lower()
    for options, env in (
        (["--cacert", str(cert)], {}),
        (["--insecure"], {}),
        ([], {"SSL_CERT_FILE": str(cert)}),
    ):
        listed = run_toolrun(
            "--remote", server.url, *options, "history", "--json", cwd=workdir, env=env
        )
        assert listed.returncode == 0, (options, listed.stderr)
        assert json.loads(listed.stdout) == []


def test_a_swapped_certificate_and_key_fail_before_listening(
    daemon: StartDaemon, tmp_path: Path, workdir: Path
) -> None:
    cert, key = _certificate(tmp_path)
    result = run_toolrun(
        "daemon", "-p", "0", "--tls-cert", str(key), "--tls-key", str(cert), cwd=workdir
    )
    assert result.returncode == 2
    assert "swapped" in result.stderr
    assert "listening" not in result.stderr
