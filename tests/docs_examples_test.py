"""The examples of README.md and docs/http-api.md, pasted into bash in a fresh checkout.

Every ```bash block runs as written, one block after another in one shell, against a real
daemon started in a copy of the repository's files; only the port is the test's own. Every
curl is watched: an answer of 400 or more fails the test (a cancel of a run that has ended
already, 409, is what the docs say may happen).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO, DaemonProcess

CURL_WATCH = """
curl() {
    command curl -w '%{stderr}HTTP %{http_code} %{url_effective}\\n' "$@"
}
"""
SKIP = (
    re.compile(r"^toolrun daemon -p 8080"),  # the test starts it, on a port of its own
    re.compile(r"^python -m pytest"),
    re.compile(r"^bash \.ci/run"),
    re.compile(r"^T=\$\(toolrun daemon token create"),  # made before the daemon starts
)


def bash_blocks(markdown: str) -> list[str]:
    return re.findall(r"^```bash\n(.*?)^```", markdown, flags=re.S | re.M)


def runnable(block: str, port: int) -> str:
    lines = []
    for line in block.splitlines():
        if any(pattern.search(line) for pattern in SKIP):
            continue
        if "pip install" in line:
            line = line.rsplit("&&", 1)[1]  # the venv is this one: the command it leads to
        lines.append(
            line.replace("localhost:8080", f"127.0.0.1:{port}").replace(
                "127.0.0.1:8080", f"127.0.0.1:{port}"
            )
        )
    return "\n".join(lines)


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    """The repository's files as a fresh clone has them (no venv, no data)."""
    listed = (
        subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True)
        .stdout.decode()
        .split("\0")
    )
    target = tmp_path / "checkout"
    for relative in filter(None, listed):
        source = REPO / relative
        if source.is_file():
            (target / relative).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / relative)
    return target


def run_docs(markdown: Path, checkout: Path, env: dict[str, str], port: int) -> str:
    script = (
        "set -euo pipefail\n"
        + CURL_WATCH
        + "\n".join(
            runnable(block, port) for block in bash_blocks(markdown.read_text(encoding="utf-8"))
        )
    )
    bin_dir = str(Path(sys.executable).parent)
    result = subprocess.run(
        ["bash", "-c", script],
        cwd=checkout,
        env={**env, "PATH": f"{bin_dir}{os.pathsep}{env['PATH']}", "CI": "1"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    answers = re.findall(r"^HTTP (\d{3}) (\S+)$", result.stderr, flags=re.M)
    assert answers, result.stderr
    failed = [
        (code, url)
        for code, url in answers
        if int(code) >= 400 and not (code == "409" and url.endswith("/cancel"))
    ]
    # curl's own --max-time ends the endless daemon-wide stream: exit 28 only there.
    ended_by_us = result.returncode == 28 and "--max-time" in script
    assert result.returncode == 0 or ended_by_us, result.stdout[-3000:] + result.stderr[-3000:]
    assert not failed, (failed, result.stderr[-3000:])
    assert "Traceback" not in result.stdout + result.stderr
    # And every run an example started did what it says (a stream answers 200 whatever its
    # tool does): succeeded, or was cancelled by the example that cancels.
    listed = subprocess.run(
        [sys.executable, "-m", "toolrun", "history", "--json", "--limit", "100"],
        cwd=checkout,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    statuses = {run["id"]: run["status"] for run in json.loads(listed.stdout)}
    assert statuses and set(statuses.values()) <= {"succeeded", "cancelled"}, statuses
    return result.stdout


def test_the_readme_runs_as_written(checkout: Path, toolrun_home: Path) -> None:
    env = dict(os.environ)
    server = DaemonProcess(["--loop", "asyncio"], checkout, env)
    try:
        port = int(server.url.rsplit(":", 1)[1])
        out = run_docs(checkout / "README.md", checkout, env, port)
    finally:
        server.stop()
    assert "exported" in out and "uexp 0.2.0" in out


def test_the_http_api_examples_run_as_written(checkout: Path, toolrun_home: Path) -> None:
    token = subprocess.run(
        [sys.executable, "-m", "toolrun", "daemon", "token", "create", "ci"],
        cwd=checkout,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    env = {**os.environ, "T": token}
    server = DaemonProcess(["--loop", "asyncio"], checkout, env)
    try:
        port = int(server.url.rsplit(":", 1)[1])
        out = run_docs(checkout / "docs" / "http-api.md", checkout, env, port)
    finally:
        server.stop()
    assert "uexp 0.1.0" in out and "x-toolrun-exit-code: 0" in out
    assert (checkout / "items.json").exists()  # the artifact curl -O fetched
