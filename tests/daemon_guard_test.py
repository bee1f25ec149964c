"""What a daemon refuses to a browser and to remote callers: other sites, other host names,
env names no one accepted, argument paths outside the workspace."""

from __future__ import annotations

import http.server
import shutil
import subprocess
import threading
import time
from pathlib import Path

import httpx
import pytest
from conftest import DaemonProcess, StartDaemon, WriteToolchain, run_toolrun

TIMEOUT = httpx.Timeout(30.0)


def port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


def runs(server: DaemonProcess) -> list[dict[str, object]]:
    answer = httpx.get(f"{server.url}/api/v1/runs", timeout=TIMEOUT)
    assert answer.status_code == 200, answer.text
    return list(answer.json()["runs"])


# -- host names -------------------------------------------------------------------------------


def test_a_request_sent_to_a_name_the_daemon_does_not_serve_is_refused(daemon: StartDaemon) -> None:
    server = daemon()
    port = port_of(server.url)
    httpx.get(f"{server.url}/cmd/probe/echo/x", timeout=TIMEOUT)  # one run to read
    # DNS rebinding: a page at evil.example whose name now resolves to 127.0.0.1.
    answer = subprocess.run(
        ["curl", "-s", "-H", f"Host: evil.example:{port}", f"{server.url}/api/v1/runs"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert '"error":"unknown_host"' in answer.stdout and "--allow-host" in answer.stdout
    assert "runs" not in answer.stdout
    for host in (f"localhost:{port}", f"127.0.0.1:{port}", "127.0.0.1", f"LOCALHOST.:{port}"):
        ok = httpx.get(f"{server.url}/api/v1/runs", headers={"Host": host}, timeout=TIMEOUT)
        assert ok.status_code == 200, host
    for host in ("evil.example", "127.0.0.1.evil.example", "a b", "[::1", "localhost:99999"):
        refused = httpx.get(f"{server.url}/result/help", headers={"Host": host}, timeout=TIMEOUT)
        assert refused.status_code == 403, host
        assert refused.json()["error"] == "unknown_host"
    # Scrapers and health checks address the daemon by any name.
    for path in ("/healthz", "/metrics"):
        assert httpx.get(f"{server.url}{path}", headers={"Host": "x"}, timeout=TIMEOUT).is_success


def test_allow_host_adds_names_and_domains(daemon: StartDaemon, toolrun_home: Path) -> None:
    assert run_toolrun("config", "set", "allow_hosts", "build01.studio.example").returncode == 0
    server = daemon("--allow-host", ".tools.example")
    for host, status in [
        ("build01.studio.example", 200),
        ("tools.example", 200),
        ("a.b.tools.example:8080", 200),
        ("eviltools.example", 403),
        ("build02.studio.example", 403),
    ]:
        answer = httpx.get(f"{server.url}/api/v1/runs", headers={"Host": host}, timeout=TIMEOUT)
        assert answer.status_code == status, host
    bad = run_toolrun("daemon", "-p", "0", "--allow-host", "a/b")
    assert bad.returncode == 2 and "--allow-host" in bad.stderr


# -- other sites ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "http://evil.example"},
        {"Origin": "null"},
        {"Origin": "http://127.0.0.1:1"},  # the same host, another port: another origin
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site"},
    ],
)
def test_a_request_from_another_site_starts_and_reads_nothing(
    daemon: StartDaemon, headers: dict[str, str]
) -> None:
    server = daemon()
    with httpx.Client(base_url=server.url, timeout=TIMEOUT, headers=headers) as client:
        answers = [
            client.get("/cmd/probe/write/pwned/x"),
            client.post("/cmd", content="cmd: probe\nargs: [write, pwned, x]"),
            client.post("/api/v1/runs", json={"cmd": "probe", "args": ["echo"]}),
            client.get("/api/v1/runs"),
            client.get("/result/help"),
        ]
        for answer in answers:
            assert answer.status_code == 403, answer.request.url
            assert answer.json()["error"] == "cross_site"
        assert client.get("/healthz").status_code == 200
        assert client.get("/metrics").status_code == 200
    assert runs(server) == []


def test_the_same_origin_and_a_typed_address_are_answered(daemon: StartDaemon) -> None:
    server = daemon()
    for headers in (
        {"Origin": server.url},
        {
            "Origin": server.url.replace("127.0.0.1", "localhost"),
            "Host": f"localhost:{port_of(server.url)}",
        },
        {"Sec-Fetch-Site": "same-origin", "Origin": server.url},
        {"Sec-Fetch-Site": "none"},
    ):
        answer = httpx.get(f"{server.url}/cmd/probe/echo/ok", headers=headers, timeout=TIMEOUT)
        assert (answer.status_code, answer.text) == (200, "ok\n"), headers


def _serve_page(host: str, html: str) -> tuple[http.server.ThreadingHTTPServer, str]:
    class Page(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = html.encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer((host, 0), Page)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://{host}:{server.server_address[1]}/"


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    assert found, "Debian's chromium is needed (apt-get install -y chromium; .ci/run does)"
    return found


def open_in_chromium(url: str, profile: Path) -> None:
    subprocess.run(
        [
            chromium(),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={profile}",
            "--virtual-time-budget=4000",
            "--dump-dom",
            url,
        ],
        capture_output=True,
        timeout=60,
    )


def test_a_web_page_in_a_real_browser_cannot_start_a_tool(
    daemon: StartDaemon, tmp_path: Path
) -> None:
    server = daemon()
    # Another origin on this machine, as any page on the internet would be.
    attack = f"""<!doctype html><title>cat pictures</title>
<img src="{server.url}/cmd/probe/write/pwned-by-img/x">
<script>
fetch("{server.url}/cmd", {{mode: "no-cors", method: "POST",
  body: "cmd: probe\\nargs: [write, pwned-by-fetch, x]"}});
fetch("{server.url}/api/v1/runs", {{mode: "no-cors", method: "POST",
  headers: {{"Content-Type": "text/plain"}}, body: '{{"cmd": "probe", "args": ["echo"]}}'}});
</script>"""
    page, page_url = _serve_page("127.0.0.2", attack)
    try:
        open_in_chromium(page_url, tmp_path / "profile")
        deadline = time.monotonic() + 10
        refused: set[str] = set()
        while time.monotonic() < deadline and len(refused) < 3:
            refused = {
                f"{r['method']} {r['path']}" for r in server.events("request") if r["status"] == 403
            }
            time.sleep(0.1)
    finally:
        page.shutdown()
    # The browser did send all three: each was refused, and nothing ran.
    assert refused == {
        "GET /cmd/probe/write/pwned-by-img/x",
        "POST /cmd",
        "POST /api/v1/runs",
    }
    assert runs(server) == []


# -- env from remote callers --------------------------------------------------------------------


def test_a_remote_caller_sets_only_env_names_someone_accepted(
    daemon: StartDaemon, toolchain: WriteToolchain
) -> None:
    toolchain(
        "game",
        "accept_env: [GAME_*]\ntoolchain:\n  - a: {cmd: probe, args: [env, GAME_MODE, GREETING]}\n",
    )
    server = daemon()
    with httpx.Client(base_url=server.url, timeout=TIMEOUT) as client:
        # The probe's own tool.toml accepts GREETING and PROBE_*.
        answer = client.post(
            "/cmd?body=json",
            json={"cmd": "probe", "args": ["env", "PROBE_X"], "env": {"PROBE_X": "1"}},
        )
        assert answer.text == "PROBE_X=1\n"
        for name in (
            "OPENSSL_CONF",
            "GIT_SSH_COMMAND",
            "GIT_CONFIG_COUNT",
            "PAGER",
            "LESSOPEN",
            "HOSTALIASES",
            "SSL_CERT_FILE",
            "http_proxy",
            "PIP_INDEX_URL",
            "npm_config_registry",
            "MAKEFLAGS",
            "LOCPATH",
        ):
            refused = client.post(
                "/cmd?body=json", json={"cmd": "probe", "args": ["echo"], "env": {name: "x"}}
            )
            assert refused.status_code == 400, name
            body = refused.json()
            assert body["field"] == f"env.{name}"
            assert "accept_env" in body["message"] and "probe" in body["message"]
        # A toolchain accepts for its steps.
        answer = client.post(
            "/cmd?toolchain=game&body=json", json={"env": {"GAME_MODE": "fast", "OTHER": "x"}}
        )
        assert answer.status_code == 400  # neither the toolchain nor its tool accepts OTHER
        assert "'game'" in answer.json()["message"]
        answer = client.post(
            "/cmd?toolchain=game&body=json", json={"env": {"GAME_MODE": "fast", "GREETING": "hi"}}
        )
        assert answer.text == "GAME_MODE=fast\nGREETING=hi\n"  # GREETING: probe accepts it
    assert [r["status"] for r in runs(server)] == ["succeeded", "succeeded"]


def test_config_accepts_env_for_every_tool_but_never_a_loader_variable(daemon: StartDaemon) -> None:
    assert run_toolrun("config", "set", "accept_env", "STUDIO_*,LD_PRELOAD").returncode == 0
    server = daemon()
    with httpx.Client(base_url=server.url, timeout=TIMEOUT) as client:
        answer = client.post(
            "/cmd?body=json",
            json={"cmd": "probe", "args": ["env", "STUDIO_A"], "env": {"STUDIO_A": "1"}},
        )
        assert answer.text == "STUDIO_A=1\n"
        refused = client.post(
            "/cmd?body=json",
            json={"cmd": "probe", "args": ["echo"], "env": {"LD_PRELOAD": "/x.so"}},
        )
        assert refused.status_code == 400
        assert "never" in refused.json()["message"]
