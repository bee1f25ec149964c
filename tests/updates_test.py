"""Newer tool versions: `toolrun tool outdated` by policy, and `auto_update` (notify, install)
checking once a day after a run, never slowing it, as a user meets them."""

from __future__ import annotations

import http.server
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import Serve, Toolrun, WriteToolchain, write_tool

from toolrun.tools.updates import find_outdated

HELLO = ("1.0.0", "1.0.1", "1.1.0", "2.0.0", "2.1.0-rc.1")


@pytest.fixture
def tools(workdir: Path, toolrun: Toolrun) -> Path:
    """./registry with hello (1.0.0 to 2.0.0, and 2.1.0-rc.1) and greet 0.1.0, 0.2.0;
    hello 1.0.0 and greet 0.1.0 installed."""
    root = workdir / "registry"
    for version in HELLO:
        write_tool(root, "hello", version)
    for version in ("0.1.0", "0.2.0"):
        write_tool(root, "greet", version)
    result = toolrun("tool", "install", "hello==1.0.0", "greet==0.1.0")
    assert result.returncode == 0, result.stderr
    return root


def outdated(toolrun: Toolrun, *args: str) -> list[dict[str, object]]:
    result = toolrun("tool", "outdated", "--json", *args)
    assert result.returncode == 0, result.stderr
    rows: list[dict[str, object]] = json.loads(result.stdout)
    return rows


def wanted(rows: list[dict[str, object]]) -> dict[str, object]:
    return {str(row["name"]): row["wanted"] for row in rows}


# -- deciding -------------------------------------------------------------------------------


def test_each_line_of_installed_versions_is_compared_within_the_policy() -> None:
    installed = {"uexp": ["0.1.0", "0.2.0", "1.0.0"]}
    offered = {"uexp": {v: "team" for v in ("0.1.3", "0.2.0", "0.3.0", "1.0.1", "2.0.0")}}
    patch = find_outdated(installed, offered, "patch")
    assert [(o.installed, o.wanted) for o in patch] == [("0.1.0", "0.1.3"), ("1.0.0", "1.0.1")]
    minor = find_outdated(installed, offered, "minor")
    assert [(o.installed, o.wanted) for o in minor] == [("0.2.0", "0.3.0"), ("1.0.0", "1.0.1")]
    major = find_outdated(installed, offered, "major")
    assert [(o.installed, o.wanted, o.latest) for o in major] == [("1.0.0", "2.0.0", "2.0.0")]


def test_prereleases_count_only_when_asked_and_unknown_tools_not_at_all() -> None:
    offered = {"a": {"1.0.0": "r", "1.1.0-rc.1": "r"}, "b": {"9.0.0": "r"}}
    assert find_outdated({"a": ["1.0.0"]}, offered, "minor") == []
    (row,) = find_outdated({"a": ["1.0.0"]}, offered, "minor", pre=True)
    assert row.wanted == "1.1.0-rc.1"
    assert find_outdated({"c": ["1.0.0"]}, offered, "major") == []


# -- toolrun tool outdated --------------------------------------------------------------------


def test_outdated_lists_newer_versions_by_policy(tools: Path, toolrun: Toolrun) -> None:
    assert wanted(outdated(toolrun)) == {"hello": "1.1.0", "greet": "0.2.0"}  # minor, default
    assert wanted(outdated(toolrun, "--policy", "patch")) == {"hello": "1.0.1"}
    assert wanted(outdated(toolrun, "--policy", "major")) == {"hello": "2.0.0", "greet": "0.2.0"}
    assert wanted(outdated(toolrun, "--policy", "major", "--pre"))["hello"] == "2.1.0-rc.1"
    assert toolrun("config", "set", "update_policy", "patch").returncode == 0
    (row,) = outdated(toolrun)
    assert row == {
        "name": "hello",
        "installed": "1.0.0",
        "wanted": "1.0.1",
        "latest": "2.0.0",
        "registry": "./registry",
        "pinned_by": [],
        "self": False,
    }
    table = toolrun("tool", "outdated")
    assert table.returncode == 0, table.stderr
    assert table.stdout.splitlines()[0].split() == [
        *("NAME", "INSTALLED", "WANTED", "LATEST", "REGISTRY", "PINNED", "BY")
    ]
    assert "toolrun tool install hello==1.0.1" in table.stdout
    # Installing the wanted version beside the old one brings the line up to date.
    assert toolrun("tool", "install", "hello==1.0.1").returncode == 0
    assert outdated(toolrun) == []
    assert "every installed tool is up to date (policy patch)" in toolrun("tool", "outdated").stdout


def test_outdated_names_what_pins_a_version(
    tools: Path, toolrun: Toolrun, toolchain: WriteToolchain
) -> None:
    toolchain("pinned", "toolchain:\n  - say:\n      cmd: hello\n      version: '==1.0.0'\n")
    toolchain("locked", "toolchain:\n  - greet:\n      cmd: greet\n      version: '0.1'\n")
    locked = toolrun("lock", "locked")
    assert locked.returncode == 0, locked.stderr
    assert toolrun("tool", "install", "greet==0.1.0").returncode == 0
    rows = {str(row["name"]): row for row in outdated(toolrun)}
    assert rows["hello"]["pinned_by"] == ["pinned.yaml: step say"]
    assert rows["greet"]["pinned_by"] == ["locked.lock"]


def test_outdated_carries_on_past_a_registry_that_cannot_be_asked(
    tools: Path, toolrun: Toolrun
) -> None:
    assert toolrun("registry", "add", "gone", "http://127.0.0.1:9/").returncode == 0
    result = toolrun("tool", "outdated", "--json")
    assert result.returncode == 0, result.stderr
    assert "toolrun: warning: registry 'gone'" in result.stderr
    assert wanted(json.loads(result.stdout)) == {"hello": "1.1.0", "greet": "0.2.0"}


def test_outdated_refuses_an_unknown_policy(tools: Path, toolrun: Toolrun) -> None:
    result = toolrun("tool", "outdated", "--policy", "newest")
    assert result.returncode == 2
    assert "--policy must be one of patch, minor, major" in result.stderr
    assert toolrun("config", "set", "auto_update", "always").returncode == 2


# -- auto_update ------------------------------------------------------------------------------


@pytest.fixture
def team(tools: Path, tmp_path: Path, toolrun: Toolrun, serve: Serve) -> str:
    """The registry served as a static tree on 127.0.0.1 and configured as 'team'; the
    folder itself is out of sight, so every answer comes over HTTP."""
    tree = tmp_path / "tree"
    assert toolrun("registry", "build", str(tools), str(tree)).returncode == 0
    minute_ago = time.time() - 60  # a date that can vouch for the index (see index_cache)
    import os

    os.utime(tree / "index.json", (minute_ago, minute_ago))
    url = serve(tree)
    assert toolrun("registry", "add", "team", url).returncode == 0
    tools.rename(tools.parent / "source")
    return url


def wait_for_check(home: Path, after: float = 0.0, seconds: float = 30) -> dict[str, Any]:
    """The stamp once a check that finished after ``after`` has written it."""
    deadline = time.monotonic() + seconds
    path = home / "update-check.json"
    while time.monotonic() < deadline:
        try:
            stamp: dict[str, Any] = json.loads(path.read_text())
        except (OSError, ValueError):
            stamp = {}
        if float(stamp.get("checked_at", 0)) > after:
            time.sleep(0.1)  # its lock released, its process gone
            return stamp
        time.sleep(0.05)
    raise AssertionError(f"no update check finished: {path} holds {stamp}")


def a_day_passes(home: Path) -> None:
    path = home / "update-check.json"
    stamp = json.loads(path.read_text())
    for key in ("checked_at", "started_at", "notified_at"):
        stamp[key] -= 86400 + 60
    path.write_text(json.dumps(stamp))


def notices(result: object) -> list[str]:
    stderr = str(getattr(result, "stderr", ""))
    return [line for line in stderr.splitlines() if line.startswith("toolrun: notice:")]


def index_requests(serve: Serve) -> list[tuple[str, int, dict[str, str]]]:
    return [answer for answer in serve.answered if answer[0].endswith("index.json")]


def test_off_by_default_nothing_is_checked(team: str, toolrun: Toolrun, serve: Serve) -> None:
    before = len(index_requests(serve))
    for _ in range(2):
        result = toolrun("exec", "hello==1.0.0", "--", "hi")
        assert result.returncode == 0 and notices(result) == []
    time.sleep(0.5)
    assert len(index_requests(serve)) == before


def test_notify_checks_once_a_day_after_a_run_and_says_so_once(
    team: str, toolrun: Toolrun, serve: Serve, toolrun_home: Path
) -> None:
    assert toolrun("config", "set", "auto_update", "notify").returncode == 0
    before = len(index_requests(serve))
    first = toolrun("exec", "hello==1.0.0", "--", "hi")
    assert first.returncode == 0 and first.stdout == "hello 1.0.0 hi\n"
    assert notices(first) == []  # the check starts once the run is over, in the background
    stamp = wait_for_check(toolrun_home)
    assert [row["wanted"] for row in stamp["outdated"]] == ["0.2.0", "1.1.0"]

    second = toolrun("exec", "hello==1.0.0", "--", "hi")
    assert second.returncode == 0 and second.stdout == "hello 1.0.0 hi\n"
    assert notices(second) == [
        "toolrun: notice: newer tools: greet 0.1.0 -> 0.2.0, hello 1.0.0 -> 1.1.0 "
        "(toolrun tool outdated)"
    ]
    for _ in range(2):  # said once; and no second check within the day
        assert notices(toolrun("exec", "hello==1.0.0", "--", "hi")) == []
    time.sleep(0.5)
    asked = index_requests(serve)[before:]
    assert len(asked) == 1, asked

    a_day_passes(toolrun_home)
    checked = time.time()
    assert notices(toolrun("exec", "hello==1.0.0", "--", "hi")) == []
    wait_for_check(toolrun_home, after=checked)
    asked = index_requests(serve)[before:]
    assert len(asked) == 2
    _, status, headers = asked[1]
    assert status == 304 and "If-Modified-Since" in headers  # a conditional request
    assert len(notices(toolrun("exec", "hello==1.0.0", "--", "hi"))) == 1


def test_install_adds_versions_beside_the_old_and_removes_none(
    team: str, toolrun: Toolrun, toolrun_home: Path, toolchain: WriteToolchain
) -> None:
    toolchain("pinned", "toolchain:\n  - say:\n      cmd: hello\n      version: '==1.0.0'\n")
    for key, value in (("auto_update", "install"), ("update_policy", "patch")):
        assert toolrun("config", "set", key, value).returncode == 0
    run = toolrun("run", "pinned", "--plain")
    assert run.returncode == 0, run.stderr
    stamp = wait_for_check(toolrun_home)
    assert stamp["installed"] == ["hello 1.0.1"] and stamp["outdated"] == []
    versions = sorted(p.name for p in (toolrun_home / "tools" / "hello").iterdir())
    assert versions == ["1.0.0", "1.0.1"]  # the pinned 1.0.0 stays, the new one beside it
    told = toolrun("exec", "hello==1.0.0", "--", "hi")
    assert told.stdout == "hello 1.0.0 hi\n"
    assert notices(told) == [
        "toolrun: notice: auto_update installed hello 1.0.1 (old versions kept)"
    ]
    assert toolrun("tool", "verify").returncode == 0


class _SlowIndex(http.server.SimpleHTTPRequestHandler):
    delay = 5.0

    def do_GET(self) -> None:
        if self.path.endswith("index.json"):
            time.sleep(self.delay)
        super().do_GET()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def slow_registry(tools: Path, tmp_path: Path, toolrun: Toolrun) -> Iterator[str]:
    """The registry as a tree whose index.json takes five seconds to come."""
    import functools

    tree = tmp_path / "slow-tree"
    assert toolrun("registry", "build", str(tools), str(tree)).returncode == 0
    handler = functools.partial(_SlowIndex, directory=str(tree))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/"
    assert toolrun("registry", "add", "slow", url).returncode == 0
    yield url
    server.shutdown()
    server.server_close()


def test_a_slow_registry_never_slows_a_run(
    slow_registry: str, toolrun: Toolrun, toolrun_home: Path
) -> None:
    assert toolrun("config", "set", "auto_update", "notify").returncode == 0
    started = time.monotonic()
    result = toolrun("exec", "hello==1.0.0", "--", "hi")
    took = time.monotonic() - started
    assert result.returncode == 0 and result.stdout == "hello 1.0.0 hi\n"
    assert took < 3.5, f"exec took {took:.1f}s while the registry took 5s to answer"
    stamp = wait_for_check(toolrun_home, seconds=30)  # the check did wait for it, elsewhere
    assert stamp["outdated"]


def test_a_daemon_makes_the_daily_check_itself(
    tools: Path, toolrun: Toolrun, toolrun_home: Path, workdir: Path
) -> None:
    """A build machine that runs only the daemon is kept up to date too, once a day."""
    from conftest import DaemonProcess

    for key, value in (("auto_update", "install"), ("update_policy", "patch")):
        assert toolrun("config", "set", key, value).returncode == 0
    first = DaemonProcess([], workdir)
    try:
        first.wait_for("update_checked", seconds=30)
        stamp = wait_for_check(toolrun_home)
        assert stamp["installed"] == ["hello 1.0.1"]
    finally:
        first.stop()
    assert (toolrun_home / "tools" / "hello" / "1.0.1").is_dir()
    assert (toolrun_home / "tools" / "hello" / "1.0.0").is_dir()  # nothing removed
    checked = stamp["checked_at"]
    again = DaemonProcess([], workdir)  # the same day: no second check
    try:
        again.wait_for("listening")
        time.sleep(1.0)
        assert not again.events("update_checked")
    finally:
        again.stop()
    assert json.loads((toolrun_home / "update-check.json").read_text())["checked_at"] == checked
