"""`toolrun lock`, `run --locked` (and config's `locked`, the HTTP body's `locked`): real
commands in a temporary home, a folder registry and one served over HTTP on 127.0.0.1."""

from __future__ import annotations

import json
import os
import time
import tomllib
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import REPO, Serve, StartDaemon, Toolrun, WriteToolchain, write_tool
from daemon_seed_test import TIMEOUT, wait_ended

TWO_STEPS = """\
toolchain:
  - a:
      cmd: hello
      version: "^1"
  - b:
      cmd: greet
"""


def lock_of(path: Path) -> dict[str, Any]:
    return tomllib.loads(path.with_suffix(".lock").read_text(encoding="utf-8"))


def test_lock_pins_each_spec_with_its_digest_and_a_locked_run_records_it(
    registry: Path, toolrun: Toolrun, toolchain: WriteToolchain
) -> None:
    path = toolchain("job", TWO_STEPS)
    result = toolrun("lock", "job", "--platform", "linux-x64,windows-x64")
    assert result.returncode == 0, result.stderr
    lock = lock_of(path)
    tools = lock["tools"]
    assert tools["hello^1"]["version"] == "1.1.0"
    assert tools["greet"]["version"] == "0.1.0"
    assert tools["greet"]["registry"] == "./registry"
    assert tools["greet"]["location"] == "../registry"  # relative: the same on every checkout
    assert set(tools["hello^1"]["platforms"]) == {"linux-x64", "windows-x64"}
    assert len(tools["hello^1"]["platforms"]["linux-x64"]["sha256"]) == 64
    assert toolrun("lock", "job", "--check").returncode == 0

    # A newer 1.x is published: the lock keeps its version until --upgrade.
    write_tool(registry, "hello", "1.2.0")
    run = toolrun("run", "job", "--locked", "--plain")
    assert run.returncode == 0, run.stderr
    assert "hello 1.1.0" in run.stdout
    assert "a | hello 1.2.0" in toolrun("run", "job", "--plain").stdout  # unlocked: the newest

    shown = json.loads(toolrun("history", "--limit", "2", "--json").stdout)
    locked_run, free_run = shown[1], shown[0]
    lock_sha = json.loads(toolrun("show", locked_run["id"], "--json").stdout)["lock_sha256"]
    import hashlib

    assert lock_sha == hashlib.sha256(path.with_suffix(".lock").read_bytes()).hexdigest()
    assert f"sha256 {lock_sha}" in toolrun("show", locked_run["id"]).stdout
    assert json.loads(toolrun("show", free_run["id"], "--json").stdout)["lock_sha256"] is None

    assert toolrun("lock", "job").returncode == 0
    assert lock_of(path)["tools"]["hello^1"]["version"] == "1.1.0"
    assert toolrun("lock", "job", "--upgrade").returncode == 0
    assert lock_of(path)["tools"]["hello^1"]["version"] == "1.2.0"
    # Relocking keeps the platforms the lock was made for.
    assert set(lock_of(path)["platforms"]) == {"linux-x64", "windows-x64"}


def test_check_fails_on_a_missing_stale_or_incomplete_lock(
    registry: Path, toolrun: Toolrun, toolchain: WriteToolchain
) -> None:
    path = toolchain("job", TWO_STEPS)
    missing = toolrun("lock", "job", "--check")
    assert missing.returncode == 1 and "does not exist" in missing.stderr
    assert toolrun("lock", "job").returncode == 0
    incomplete = toolrun("lock", "job", "--check", "--platform", "linux-x64,windows-arm64")
    assert incomplete.returncode == 1
    assert "greet has no digest for windows-arm64" in incomplete.stderr
    path.write_text(TWO_STEPS + "  - c:\n      cmd: hello\n", encoding="utf-8")
    stale = toolrun("lock", "job", "--check")
    assert stale.returncode == 1
    assert "changed since it was locked" in stale.stderr
    assert "hello is not locked" in stale.stderr
    assert not (path.parent / ".job.lock.tmp").exists()


def test_a_locked_run_refuses_anything_else_with_exit_5(
    registry: Path, toolrun: Toolrun, toolchain: WriteToolchain, toolrun_home: Path
) -> None:
    path = toolchain("job", TWO_STEPS)
    no_lock = toolrun("run", "job", "--locked", "--plain")
    assert no_lock.returncode == 5 and "job.lock does not exist" in no_lock.stderr
    assert "toolrun lock" in no_lock.stderr
    assert toolrun("lock", "job").returncode == 0

    path.write_text(TWO_STEPS.replace("^1", "^1.1"), encoding="utf-8")
    stale = toolrun("run", "job", "--locked", "--plain")
    assert stale.returncode == 5 and "changed since it was locked" in stale.stderr
    path.write_text(TWO_STEPS, encoding="utf-8")

    # The registry's greet 0.1.0 is republished with other bytes: the lock refuses it.
    folder = registry / "greet" / "0.1.0"
    manifest = folder / "tool.toml"
    manifest.write_text(
        manifest.read_text(encoding="utf-8").replace("test tool greet", "changed"),
        encoding="utf-8",
    )
    republished = toolrun("run", "job", "--locked", "--plain")
    assert republished.returncode == 5, republished.stderr
    assert "./registry offers greet 0.1.0 with sha256" in republished.stderr
    assert "not installed" in republished.stderr
    assert not (toolrun_home / "tools" / "greet").exists()
    check = toolrun("lock", "job", "--check")
    assert check.returncode == 1 and "not the locked" in check.stderr
    # Nothing of a refused run is recorded.
    assert json.loads(toolrun("history", "--json").stdout) == []

    damaged = path.with_suffix(".lock")
    damaged.write_text("format = 1\n[tools\n", encoding="utf-8")
    broken = toolrun("run", "job", "--locked", "--plain")
    assert broken.returncode == 5 and "not a lock file" in broken.stderr
    assert toolrun("lock", "job", "--check").returncode == 3


def test_an_installed_tool_that_differs_from_the_lock_is_refused(
    registry: Path, toolrun: Toolrun, toolchain: WriteToolchain, toolrun_home: Path
) -> None:
    toolchain("job", "toolchain:\n  - a: {cmd: greet}\n")
    assert toolrun("lock", "job").returncode == 0
    assert toolrun("tool", "install", "greet==0.1.0").returncode == 0
    installed = toolrun_home / "tools" / "greet" / "0.1.0" / "tool.toml"
    installed.write_text(installed.read_text(encoding="utf-8") + "\n", encoding="utf-8")
    refused = toolrun("run", "job", "--locked", "--plain")
    assert refused.returncode == 5
    assert "greet 0.1.0 as installed" in refused.stderr and "toolrun tool remove" in refused.stderr


def test_config_locked_makes_every_run_locked_unless_told_otherwise(
    registry: Path, toolrun: Toolrun, toolchain: WriteToolchain
) -> None:
    toolchain("job", TWO_STEPS)
    assert toolrun("config", "set", "locked", "true").returncode == 0
    refused = toolrun("run", "job", "--plain")
    assert refused.returncode == 5 and "does not exist" in refused.stderr
    assert toolrun("run", "job", "--plain", "--unlocked").returncode == 0
    assert toolrun("lock", "job").returncode == 0
    assert toolrun("run", "job", "--plain").returncode == 0


def test_lock_reads_digests_from_an_http_index_without_downloading(
    registry: Path, toolrun: Toolrun, toolchain: WriteToolchain, tmp_path: Path, serve: Serve
) -> None:
    out = tmp_path / "published"
    assert toolrun("registry", "build", str(registry), str(out)).returncode == 0
    minute_ago = time.time() - 60
    os.utime(out / "index.json", (minute_ago, minute_ago))
    url = serve(out)
    assert toolrun("registry", "add", "team", url).returncode == 0
    registry.rename(registry.parent / "source")  # only HTTP from now on
    path = toolchain("job", TWO_STEPS)
    result = toolrun("lock", "job", "--platform", "linux-x64,windows-x64")
    assert result.returncode == 0, result.stderr
    assert not any(p.endswith(".zip") for p, _, _ in serve.answered)  # the index alone
    index = json.loads((out / "index.json").read_text(encoding="utf-8"))
    entry = index["tools"]["hello"]["versions"]["1.1.0"]
    locked = lock_of(path)["tools"]["hello^1"]
    assert locked["registry"] == "team" and locked["location"] == url
    assert locked["platforms"]["windows-x64"] == {"sha256": entry["sha256"], "size": entry["size"]}
    run = toolrun("run", "job", "--locked", "--plain")
    assert run.returncode == 0, run.stderr

    # The archive is republished under the same version: a locked run refuses to install it.
    archive = out / "greet" / "greet-0.1.0.zip"
    assert archive.exists()
    toolrun("tool", "remove", "greet==0.1.0")
    with_other_bytes = dict(index)
    with_other_bytes["tools"]["greet"]["versions"]["0.1.0"]["sha256"] = "0" * 64
    (out / "index.json").write_text(json.dumps(with_other_bytes), encoding="utf-8")
    assert toolrun("config", "set", "registry_cache", "0").returncode == 0
    refused = toolrun("run", "job", "--locked", "--plain")
    assert refused.returncode == 5, refused.stdout + refused.stderr


def test_the_daemon_runs_a_locked_body_and_refuses_one_its_lock_does_not_allow(
    daemon: StartDaemon, toolchain: WriteToolchain, toolrun: Toolrun
) -> None:
    path = toolchain("job", "toolchain:\n  - a: {cmd: probe, version: '^1', args: [echo, hi]}\n")
    server = daemon()
    with httpx.Client(base_url=server.url, timeout=TIMEOUT) as client:
        missing = client.post("/api/v1/runs", json={"toolchain": "job", "locked": True})
        assert missing.status_code == 409, missing.text
        assert missing.json()["error"] == "locked" and missing.json()["field"] == "locked"
        bad = client.post("/api/v1/runs", json={"toolchain": "job", "locked": "yes"})
        assert bad.status_code == 400 and bad.json()["field"] == "locked"
        one_tool = client.post("/api/v1/runs", json={"cmd": "probe", "locked": True})
        assert one_tool.status_code == 400 and one_tool.json()["field"] == "locked"

        assert toolrun("lock", "job").returncode == 0
        answer = client.post("/api/v1/runs", json={"toolchain": "job", "locked": True})
        assert answer.status_code == 202, answer.text
        run = wait_ended(client, answer.json()["id"])
        assert run["status"] == "succeeded", client.get(f"/api/v1/runs/{run['id']}/log").text
        assert run["lock_sha256"]
        steps = client.get(f"/api/v1/runs/{run['id']}").json()["steps"]
        assert steps[0]["version"] == "1.0.0"
    # --remote refuses as a local run does: exit 5.
    path.write_text(path.read_text(encoding="utf-8") + "# changed\n", encoding="utf-8")
    remote = toolrun("--remote", server.url, "run", "job", "--locked", "--plain")
    assert remote.returncode == 5, remote.stderr
    assert "changed since it was locked" in remote.stderr


def test_the_shipped_example_is_locked() -> None:
    """toolchains/export-job.lock stays current with its toolchain and the checkout's registry."""
    from conftest import run_toolrun

    result = run_toolrun("lock", "export-job", "--check", cwd=REPO)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("text", ["format = 2\n", "format = 1\n[tools.x]\nname = 1\n"])
def test_a_lock_of_another_format_or_damaged_is_named(
    registry: Path, toolrun: Toolrun, toolchain: WriteToolchain, text: str
) -> None:
    path = toolchain("job", TWO_STEPS)
    path.with_suffix(".lock").write_text(text, encoding="utf-8")
    result = toolrun("lock", "job", "--check")
    assert result.returncode == 3
    assert "job.lock" in result.stderr


def test_config_locked_holds_the_daemons_toolchain_runs_unless_the_body_says_otherwise(
    daemon: StartDaemon, toolchain: WriteToolchain, toolrun: Toolrun
) -> None:
    toolchain("job", "toolchain:\n  - a: {cmd: probe, version: '^1', args: [echo, hi]}\n")
    assert toolrun("config", "set", "locked", "true").returncode == 0
    server = daemon()
    with httpx.Client(base_url=server.url, timeout=TIMEOUT) as client:
        refused = client.post("/api/v1/runs", json={"toolchain": "job"})
        assert refused.status_code == 409 and refused.json()["error"] == "locked"
        unlocked = client.post("/api/v1/runs", json={"toolchain": "job", "locked": False})
        assert unlocked.status_code == 202, unlocked.text
        one_tool = client.post("/api/v1/runs", json={"cmd": "probe", "args": ["echo", "x"]})
        assert one_tool.status_code == 202, one_tool.text  # a tool's run has no lock to keep
        assert toolrun("lock", "job").returncode == 0
        locked = client.post("/api/v1/runs", json={"toolchain": "job"})
        assert locked.status_code == 202, locked.text
        assert wait_ended(client, locked.json()["id"])["lock_sha256"]


@pytest.mark.parametrize(("given", "says"), [("linux x64", "not a platform name"),
                                              (",", "name at least one platform")])  # fmt: skip
def test_a_bad_platform_list_is_a_usage_error(
    registry: Path, toolrun: Toolrun, toolchain: WriteToolchain, given: str, says: str
) -> None:
    toolchain("job", TWO_STEPS)
    result = toolrun("lock", "job", "--platform", given)
    assert result.returncode == 2 and says in result.stderr
    assert not (registry.parent / "toolchains" / "job.lock").exists()


def test_a_lock_made_for_other_platforms_refuses_to_run_here(
    registry: Path, toolrun: Toolrun, toolchain: WriteToolchain
) -> None:
    toolchain("job", TWO_STEPS)
    assert toolrun("lock", "job", "--platform", "windows-x64").returncode == 0
    refused = toolrun("run", "job", "--locked", "--plain")
    assert refused.returncode == 5
    assert "has no digest for linux-x64 (it has: windows-x64)" in refused.stderr


def test_a_locked_version_no_registry_offers_is_named(
    registry: Path, toolrun: Toolrun, toolchain: WriteToolchain
) -> None:
    import shutil

    toolchain("job", TWO_STEPS)
    assert toolrun("lock", "job").returncode == 0
    shutil.rmtree(registry / "greet")
    refused = toolrun("run", "job", "--locked", "--plain")
    assert refused.returncode == 4
    assert "greet 0.1.0 (locked in" in refused.stderr and "no registry offers it" in refused.stderr
    check = toolrun("lock", "job", "--check")
    assert check.returncode == 1 and "no registry offers greet 0.1.0 any more" in check.stderr
