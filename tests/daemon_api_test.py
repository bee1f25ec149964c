"""The REST surface, tokens, the queue, shutdown and metrics of a real `toolrun daemon`."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from conftest import REPO, StartDaemon, WriteToolchain, run_toolrun
from daemon_seed_test import TIMEOUT, sse_events, wait_ended


def start_run(client: httpx.Client, body: dict[str, object]) -> str:
    answer = client.post("/api/v1/runs", json=body)
    assert answer.status_code == 202, answer.text
    assert answer.headers["location"] == f"/api/v1/runs/{answer.json()['id']}"
    return str(answer.json()["id"])


def test_runs_are_listed_filtered_and_paged(daemon: StartDaemon) -> None:
    server = daemon()
    with httpx.Client(base_url=server.url, timeout=TIMEOUT) as client:
        ids = [start_run(client, {"cmd": "probe", "args": ["echo", str(i)]}) for i in range(5)]
        failed = start_run(client, {"cmd": "probe", "args": ["fail", "3"]})
        for run_id in [*ids, failed]:
            wait_ended(client, run_id)
        everything = client.get("/api/v1/runs").json()
        assert [r["id"] for r in everything["runs"]] == [failed, *reversed(ids)]
        only_failed = client.get("/api/v1/runs", params={"status": "failed"}).json()
        assert [r["id"] for r in only_failed["runs"]] == [failed]
        assert client.get("/api/v1/runs", params={"requester": "nobody"}).json()["runs"] == []
        assert client.get("/api/v1/runs", params={"since": "1h"}).json()["runs"]
        assert client.get("/api/v1/runs", params={"until": "2000-01-01"}).json()["runs"] == []

        first = client.get("/api/v1/runs", params={"page_size": 4}).json()
        assert len(first["runs"]) == 4 and first["next_cursor"] == first["runs"][-1]["id"]
        second = client.get(
            "/api/v1/runs", params={"page_size": 4, "cursor": first["next_cursor"]}
        ).json()
        assert [r["id"] for r in first["runs"] + second["runs"]] == [
            r["id"] for r in everything["runs"]
        ]
        assert second["next_cursor"] is None
        page2 = client.get("/api/v1/runs", params={"page_size": 4, "page": 2}).json()
        assert page2["runs"] == second["runs"]

        for params, field in [
            ({"status": "sleeping"}, "status"),
            ({"page_size": "101"}, "page_size"),
            ({"page": "0"}, "page"),
            ({"page": "x"}, "page"),
            ({"since": "last tuesday"}, "since"),
            ({"cursor": "20990101000000-1"}, "cursor"),
        ]:
            answer = client.get("/api/v1/runs", params=params)
            if field == "cursor":  # a well-formed cursor naming no run: nothing to page after
                assert answer.status_code == 404 and answer.json()["field"] == "cursor"
            else:
                assert answer.status_code == 400 and answer.json()["field"] == field, params


def test_one_run_its_log_and_its_artifacts(daemon: StartDaemon, toolchain: WriteToolchain) -> None:
    toolchain(
        "make",
        "toolchain:\n"
        "  - write: {cmd: probe, args: [write, out/report.txt, made by probe]}\n"
        "  - talk: {cmd: probe, args: [echo, one, two, three], needs: [write]}\n",
    )
    server = daemon()
    with httpx.Client(base_url=server.url, timeout=TIMEOUT) as client:
        run_id = start_run(client, {"toolchain": "make"})
        run = wait_ended(client, run_id)
        assert run["status"] == "succeeded"
        detail = client.get(f"/api/v1/runs/{run_id}").json()
        assert [s["id"] for s in detail["steps"]] == ["write", "talk"]
        assert all(len(s["sha256"]) == 64 for s in detail["steps"])
        assert detail["links"]["events"] == f"/api/v1/runs/{run_id}/events"

        log = client.get(f"/api/v1/runs/{run_id}/log").text
        assert "talk | one\ntalk | two\ntalk | three\n" in log
        assert client.get(f"/api/v1/runs/{run_id}/log", params={"step": "talk"}).text == (
            "one\ntwo\nthree\n"
        )
        paged = client.get(
            f"/api/v1/runs/{run_id}/log", params={"step": "talk", "offset": 1, "limit": 1}
        )
        assert paged.text == "two\n"
        assert client.get(f"/api/v1/runs/{run_id}/log", params={"step": "nope"}).status_code == 404

        files = client.get(f"/api/v1/runs/{run_id}/artifacts").json()["files"]
        assert files == [
            {
                "path": "out/report.txt",
                "size": len(b"made by probe"),
                "sha256": hashlib.sha256(b"made by probe").hexdigest(),
            }
        ]
        download = client.get(f"/api/v1/runs/{run_id}/artifacts/out/report.txt")
        assert download.status_code == 200 and download.content == b"made by probe"
        for bad in ("../toolchain.yaml", "out/../../events.jsonl", "missing.txt"):
            answer = client.get(f"/api/v1/runs/{run_id}/artifacts/{bad}")
            assert answer.status_code in (400, 404), bad
            assert "error" in answer.json()


def test_cancel_ends_a_running_run_and_refuses_an_ended_one(daemon: StartDaemon) -> None:
    server = daemon()
    with httpx.Client(base_url=server.url, timeout=TIMEOUT) as client:
        run_id = client.get("/cmd/probe/sleep/60?onlyid=true").text
        time.sleep(0.5)
        answer = client.post(f"/api/v1/runs/{run_id}/cancel")
        assert answer.status_code == 202
        assert wait_ended(client, run_id, 15)["status"] == "cancelled"
        again = client.post(f"/api/v1/runs/{run_id}/cancel")
        assert again.status_code == 409 and again.json()["error"] == "finished"
        assert client.post("/api/v1/runs/20990101000000-1/cancel").status_code == 404


def test_the_queue_holds_runs_beyond_max_parallel_and_refuses_past_its_size(
    daemon: StartDaemon,
) -> None:
    server = daemon("--max-parallel", "1", "--queue", "1")
    with httpx.Client(base_url=server.url, timeout=TIMEOUT) as client:
        going = client.get("/cmd/probe/sleep/60?onlyid=true").text
        waiting = client.get("/cmd/probe/echo/later?onlyid=true").text
        pending = client.get(f"/result/{waiting}")
        assert pending.status_code == 202
        assert pending.json() == {"id": waiting, "status": "queued", "position": 1}
        assert client.get(f"/api/v1/runs/{waiting}").json()["position"] == 1
        full = client.get("/cmd/probe/echo/no-room")
        assert full.status_code == 429
        assert full.headers["retry-after"].isdigit()
        assert full.json()["error"] == "queue_full"
        metrics = client.get("/metrics").text
        assert "toolrun_runs_running 1" in metrics and "toolrun_runs_queued 1" in metrics
        # Cancelling a queued run records it as cancelled without running it.
        assert client.post(f"/api/v1/runs/{waiting}/cancel").status_code == 202
        assert wait_ended(client, waiting)["status"] == "cancelled"
        assert client.get(f"/result/{waiting}").text == "toolrun: run cancelled\n"
        client.post(f"/api/v1/runs/{going}/cancel")
        wait_ended(client, going)


def test_higher_priorities_overtake_queued_runs(
    daemon: StartDaemon, toolchain: WriteToolchain
) -> None:
    """The body's priority, the toolchain's, and a run's place in the queue all agree."""
    toolchain("later", "priority: low\ntoolchain:\n  - a: {cmd: probe, args: [echo, low]}\n")
    server = daemon("--max-parallel", "1")
    with httpx.Client(base_url=server.url, timeout=TIMEOUT) as client:
        going = start_run(client, {"cmd": "probe", "args": ["sleep", "60"]})
        first = start_run(client, {"cmd": "probe", "args": ["echo", "1"]})
        low = start_run(client, {"toolchain": "later"})
        second = start_run(client, {"cmd": "probe", "args": ["echo", "2"], "priority": "normal"})
        urgent = start_run(client, {"cmd": "probe", "args": ["echo", "!"], "priority": "high"})
        top = start_run(client, {"cmd": "probe", "args": ["echo", "!!"], "priority": 500})
        expected = [top, urgent, first, second, low]
        runs = {run_id: client.get(f"/api/v1/runs/{run_id}").json() for run_id in expected}
        assert [runs[run_id]["position"] for run_id in expected] == [1, 2, 3, 4, 5]
        assert [runs[run_id]["priority"] for run_id in expected] == [500, 10, 0, 0, -10]
        refused = client.post("/api/v1/runs", json={"cmd": "probe", "priority": "urgent"})
        assert refused.status_code == 400 and refused.json()["field"] == "priority"
        assert client.post(f"/api/v1/runs/{going}/cancel").status_code == 202
        ended = [wait_ended(client, run_id) for run_id in expected]
        assert all(run["status"] == "succeeded" for run in ended)
        starts = [float(str(run["started_at"])) for run in ended]
        assert starts == sorted(starts), "the queue did not start them by priority"


def test_the_daemon_wide_stream_reports_transitions(daemon: StartDaemon) -> None:
    server = daemon()
    received: list[dict[str, str]] = []
    ready = threading.Event()

    def listen() -> None:
        with httpx.stream("GET", f"{server.url}/api/v1/events", timeout=TIMEOUT) as answer:
            block: list[str] = []
            for line in answer.iter_lines():
                block.append(line)
                if line:
                    continue
                received.extend(sse_events(block))
                block = []
                ready.set()
                if any('"succeeded"' in e.get("data", "") for e in received):
                    return

    thread = threading.Thread(target=listen, daemon=True)
    thread.start()
    assert ready.wait(10)
    with httpx.Client(base_url=server.url, timeout=TIMEOUT) as client:
        run_id = client.get("/cmd/probe/echo/x?onlyid=true").text
    thread.join(15)
    states = [json.loads(e["data"])["status"] for e in received if e["event"] == "run"]
    assert received[0]["event"] == "hello"
    assert states == ["queued", "running", "succeeded"]
    assert all(json.loads(e["data"])["id"] == run_id for e in received if e["event"] == "run")


def test_tools_toolchains_health_and_openapi(
    daemon: StartDaemon, toolchain: WriteToolchain
) -> None:
    toolchain("one", "toolchain:\n  - a: {cmd: probe, args: [echo, hi]}\n")
    toolchain("broken", "toolchain: [\n")
    server = daemon()
    with httpx.Client(base_url=server.url, timeout=TIMEOUT) as client:
        client.get("/cmd/probe/echo/install-it")
        tools = client.get("/api/v1/tools").json()
        assert [(t["name"], t["version"]) for t in tools["installed"]] == [("probe", "2.0.0")]
        available = client.get("/api/v1/tools", params={"available": "true"}).json()
        assert sorted(available["available"]["probe"]) == ["1.0.0", "2.0.0"]
        chains = {c["name"]: c for c in client.get("/api/v1/toolchains").json()["toolchains"]}
        assert chains["one"]["valid"] and chains["one"]["steps"][0]["cmd"] == "probe"
        assert not chains["broken"]["valid"] and chains["broken"]["error"]
        assert client.get("/healthz").json()["status"] == "ok"
        document = client.get("/openapi.json").json()
        assert document["openapi"].startswith("3.")
        assert {"/cmd", "/result/{run_id}", "/api/v1/runs", "/metrics"} <= set(document["paths"])


def test_metrics_parse_as_prometheus_text(daemon: StartDaemon) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    server = daemon()
    with httpx.Client(base_url=server.url, timeout=TIMEOUT) as client:
        for code in ("0", "2"):
            run_id = client.get(f"/cmd/probe/fail/{code}?onlyid=true").text
            wait_ended(client, run_id)
        text = client.get("/metrics").text
    families = {f.name: f for f in text_string_to_metric_families(text)}
    runs = {
        (s.labels["toolchain"], s.labels["status"]): s.value
        for s in families["toolrun_runs"].samples
        if s.name == "toolrun_runs_total"
    }
    assert runs == {("probe", "succeeded"): 1.0, ("probe", "failed"): 1.0}
    histogram = families["toolrun_run_duration_seconds"]
    count = [s.value for s in histogram.samples if s.name.endswith("_count")]
    assert count == [2.0]
    assert families["toolrun_runs_running"].samples[0].value == 0
    requests = {
        (s.labels["method"], s.labels["code"]): s.value
        for s in families["toolrun_http_requests"].samples
        if s.name == "toolrun_http_requests_total"
    }
    assert requests[("GET", "200")] >= 2
    # The process's own, from prometheus_client's collectors; no `_created` series.
    assert families["process_resident_memory_bytes"].samples[0].value > 1e6
    assert "python_gc_objects_collected" in families
    assert not [line for line in text.splitlines() if "_created" in line]


def test_metrics_in_multi_process_mode_add_up_across_daemons(
    daemon: StartDaemon, tmp_path: Path
) -> None:
    """With PROMETHEUS_MULTIPROC_DIR, each daemon writes its counts there and /metrics of
    any of them answers for all: two daemons, one run each, two runs counted."""
    from prometheus_client.parser import text_string_to_metric_families

    shared = tmp_path / "prometheus"
    shared.mkdir()
    env = {"PROMETHEUS_MULTIPROC_DIR": str(shared)}
    first, second = daemon(env=env), daemon(env=env)
    for server in (first, second):
        with httpx.Client(base_url=server.url, timeout=TIMEOUT) as client:
            wait_ended(client, client.get("/cmd/probe/fail/0?onlyid=true").text)
    with httpx.Client(base_url=first.url, timeout=TIMEOUT) as client:
        text = client.get("/metrics").text
    families = {f.name: f for f in text_string_to_metric_families(text)}
    runs = [s.value for s in families["toolrun_runs"].samples if s.name == "toolrun_runs_total"]
    assert runs == [2.0]
    assert any(path.suffix == ".db" for path in shared.iterdir())


# -- tokens -----------------------------------------------------------------------------------


def test_tokens_are_created_listed_and_revoked_with_only_a_hash_stored(toolrun_home: Path) -> None:
    created = run_toolrun("daemon", "token", "create", "ci", "--scope", "read")
    assert created.returncode == 0, created.stderr
    secret = created.stdout.strip()
    assert secret.startswith("trk_") and len(secret) > 40
    config = (toolrun_home / "config.toml").read_text(encoding="utf-8")
    assert secret not in config and "sha256" in config
    listed = json.loads(run_toolrun("daemon", "token", "list", "--json").stdout)
    assert listed[0]["name"] == "ci" and listed[0]["scope"] == "read"
    assert run_toolrun("daemon", "token", "create", "ci").returncode == 2  # exists
    bad_scope = run_toolrun("daemon", "token", "create", "x", "--scope", "root")
    assert bad_scope.returncode == 2 and "--scope" in bad_scope.stderr
    assert run_toolrun("daemon", "token", "revoke", "ci").returncode == 0
    assert run_toolrun("daemon", "token", "revoke", "ci").returncode == 4
    assert json.loads(run_toolrun("daemon", "token", "list", "--json").stdout) == []


def test_tokens_scopes_and_allow_lists_are_enforced(
    daemon: StartDaemon, toolrun_home: Path
) -> None:
    reader = run_toolrun("daemon", "token", "create", "reader", "--scope", "read").stdout.strip()
    runner = run_toolrun(
        "daemon", "token", "create", "builder", "--scope", "run", "--allow", "probe"
    ).stdout.strip()
    other = run_toolrun("daemon", "token", "create", "other", "--scope", "run").stdout.strip()
    admin = run_toolrun("daemon", "token", "create", "boss", "--scope", "admin").stdout.strip()
    server = daemon()

    def call(method: str, path: str, token: str | None = None) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.request(method, f"{server.url}{path}", headers=headers, timeout=TIMEOUT)

    assert call("GET", "/healthz").status_code == 200  # open to load balancers
    missing = call("GET", "/api/v1/runs")
    assert missing.status_code == 401 and missing.headers["www-authenticate"] == "Bearer"
    assert call("GET", "/api/v1/runs", "trk_wrong").status_code == 401
    assert call("GET", "/api/v1/runs", reader).status_code == 200
    assert call("GET", "/cmd/probe/echo/x", reader).status_code == 403
    forbidden = call("POST", "/cmd?toolchain=export-job", runner)
    assert forbidden.status_code == 403 and forbidden.json()["field"] == "toolchain"
    allowed = call("GET", "/cmd/probe/echo/x?onlyid=true", runner)
    assert allowed.status_code == 202
    run_id = allowed.text
    with httpx.Client(
        base_url=server.url, timeout=TIMEOUT, headers={"Authorization": f"Bearer {admin}"}
    ) as client:
        assert wait_ended(client, run_id)["requester"] == "builder"
        sleeper = client.get("/cmd/probe/sleep/60?onlyid=true").text
    # A run token cancels only its own runs; admin cancels any.
    assert call("POST", f"/api/v1/runs/{sleeper}/cancel", other).status_code == 403
    assert call("POST", f"/api/v1/runs/{sleeper}/cancel", admin).status_code == 202


def test_beyond_loopback_the_daemon_refuses_to_start_without_tokens(workdir: Path) -> None:
    refused = run_toolrun("daemon", "--host", "0.0.0.0", "-p", "0", cwd=workdir)
    assert refused.returncode == 2
    assert "without tokens" in refused.stderr and "token create" in refused.stderr


def test_bad_daemon_options_are_usage_errors(workdir: Path) -> None:
    assert run_toolrun("daemon", "--grace", "soon", cwd=workdir).returncode == 2
    assert run_toolrun("daemon", "-p", "70000", cwd=workdir).returncode == 2
    assert run_toolrun("daemon", "--tls-cert", "nope.pem", cwd=workdir).returncode == 2
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        busy = run_toolrun("daemon", "-p", port, cwd=workdir)
    assert busy.returncode == 1 and f"127.0.0.1:{port}" in busy.stderr


# -- stopping ---------------------------------------------------------------------------------


def test_sigterm_refuses_new_runs_lets_running_ones_finish_and_exits_0(daemon: StartDaemon) -> None:
    server = daemon("--grace", "20s")
    with httpx.Client(base_url=server.url, timeout=TIMEOUT) as client:
        run_id = client.get("/cmd/probe/sleep/2?onlyid=true").text
        time.sleep(0.3)
        server.process.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        assert client.get("/healthz").status_code == 503
        refused = client.get("/cmd/probe/echo/late")
        assert refused.status_code == 503 and refused.json()["error"] == "shutting_down"
        assert client.get(f"/api/v1/runs/{run_id}").json()["status"] == "running"
    assert server.process.wait(30) == 0
    listed = {r["id"]: r for r in json.loads(run_toolrun("history", "--json").stdout)}
    assert listed[run_id]["status"] == "succeeded"


def test_sigterm_cancels_what_outlives_the_grace_period(daemon: StartDaemon) -> None:
    server = daemon("--grace", "1s")
    with httpx.Client(base_url=server.url, timeout=TIMEOUT) as client:
        run_id = client.get("/cmd/probe/sleep/60?onlyid=true").text
        time.sleep(0.3)
    started = time.monotonic()
    assert server.stop() == 0
    assert time.monotonic() - started < 15
    listed = {r["id"]: r for r in json.loads(run_toolrun("history", "--json").stdout)}
    assert listed[run_id]["status"] == "cancelled"
    assert server.events("drained")[0]["cancelled"] == [run_id]


def test_after_sigkill_the_next_start_marks_its_runs_interrupted(daemon: StartDaemon) -> None:
    server = daemon()
    with httpx.Client(base_url=server.url, timeout=TIMEOUT) as client:
        run_id = client.get("/cmd/probe/sleep/60?onlyid=true").text
        time.sleep(0.3)
    children = [int(pid) for pid in os.popen(f"pgrep -P {server.process.pid}").read().split()]
    server.process.kill()
    server.process.wait()
    for pid in children:  # the tool, orphaned by the kill
        os.kill(pid, signal.SIGKILL)
    again = daemon()
    assert again.wait_for("started")["runs_interrupted"] == [run_id]
    run = httpx.get(f"{again.url}/api/v1/runs/{run_id}", timeout=TIMEOUT).json()
    assert run["status"] == "interrupted"


# -- many clients -----------------------------------------------------------------------------


def test_hundreds_of_idle_sse_readers_do_not_hold_up_other_requests(daemon: StartDaemon) -> None:
    server = daemon()
    host, port = server.url.removeprefix("http://").split(":")
    run_id = httpx.get(f"{server.url}/cmd/probe/sleep/30?onlyid=true", timeout=TIMEOUT).text
    readers = []
    request = (f"GET /api/v1/runs/{run_id}/events HTTP/1.1\r\nHost: {host}\r\n\r\n").encode()
    for _ in range(300):  # they connect and never read
        sock = socket.create_connection((host, int(port)), timeout=10)
        sock.sendall(request)
        readers.append(sock)
    started = time.monotonic()
    with httpx.Client(base_url=server.url, timeout=TIMEOUT) as client:
        for _ in range(20):
            assert client.get("/healthz").status_code == 200
        assert client.get("/cmd/probe/echo/still-here").text == "still-here\n"
    assert time.monotonic() - started < 5
    for sock in readers:
        sock.close()
    httpx.post(f"{server.url}/api/v1/runs/{run_id}/cancel", timeout=TIMEOUT)


# -- the OpenAPI document against the server --------------------------------------------------


@pytest.mark.timeout(300)  # 70 s alone under coverage; more beside three other workers
def test_schemathesis_finds_no_disagreement_between_the_document_and_the_daemon(
    daemon: StartDaemon, tmp_path: Path
) -> None:
    server = daemon()
    # A real run, so that the operations on a run reach it rather than a 404.
    made = httpx.get(f"{server.url}/cmd/probe/write/out.txt/hello", timeout=TIMEOUT)
    config = tmp_path / "schemathesis.toml"
    config.write_text(
        (REPO / "tests" / "schemathesis.toml").read_text()
        + f'\n[parameters]\nrun_id = "{made.headers["x-toolrun-run-id"]}"\n'
        + '"path.tool" = "probe"\n'
    )
    result = subprocess.run(
        [
            str(Path(sys.executable).with_name("schemathesis")),
            "--config-file",
            str(config),
            "run",
            f"{server.url}/openapi.json",
            "--checks",
            "all",
            "--max-examples",
            "10",
            "--request-timeout",
            "10",
            "--seed",
            "1",
            "--workers",
            "1",  # hypothesis parses lambdas with ast, which Python 3.11 cannot do in threads
        ],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]


def test_tls_serves_https_with_the_given_certificate(daemon: StartDaemon, tmp_path: Path) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )
    server = daemon("--tls-cert", str(cert), "--tls-key", str(key))
    assert server.url.startswith("https://")
    import ssl

    context = ssl.create_default_context(cafile=str(cert))
    answer = httpx.get(f"{server.url}/cmd/probe/echo/secure", verify=context, timeout=TIMEOUT)
    assert answer.status_code == 200 and answer.text == "secure\n"
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{server.url}/healthz", timeout=TIMEOUT)  # not trusted without the cert


def test_keep_alive_answers_do_not_wait_for_delayed_acks(daemon: StartDaemon) -> None:
    # With Nagle's algorithm on, each answer's second segment waited for the client's delayed
    # ACK: 40 ms a request on one connection. TCP_NODELAY makes it a couple of ms.
    server = daemon()
    with httpx.Client(base_url=server.url, timeout=TIMEOUT) as client:
        client.get("/healthz")
        times = []
        for _ in range(20):
            started = time.perf_counter()
            client.get("/healthz")
            times.append(time.perf_counter() - started)
    assert sorted(times)[10] < 0.02
