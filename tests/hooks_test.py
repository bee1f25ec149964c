"""Hooks on a real daemon: GitHub's, GitLab's and toolrun's signatures checked (valid, forged,
missing, replayed), the payload mapped to params, the filter, max_parallel, a bomb of a body,
and the hook's signature standing in for the bearer token the other routes want."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from pathlib import Path

import httpx
import pytest
from conftest import DaemonProcess, StartDaemon, Toolrun, WriteToolchain

from toolrun.automation.signing import sign
from toolrun.history.store import Store

DEPLOY = """params:
  branch: {default: none}
  who: {default: nobody}
toolchain:
  - show: {cmd: probe, args: [echo, '${{ params.branch }}', '${{ params.who }}']}
"""
SLOW = "toolchain:\n  - wait: {cmd: probe, args: [sleep, '5']}\n"


def github(secret: bytes, body: bytes, delivery: str) -> dict[str, str]:
    mac = hmac.new(secret, body, hashlib.sha256).hexdigest()
    return {
        "X-Hub-Signature-256": f"sha256={mac}",
        "X-GitHub-Delivery": delivery,
        "X-GitHub-Event": "push",
        "Content-Type": "application/json",
    }


@pytest.fixture
def hooked(
    toolrun: Toolrun, toolchain: WriteToolchain, daemon: StartDaemon, workdir: Path
) -> tuple[DaemonProcess, dict[str, bytes]]:
    toolchain("deploy", DEPLOY)
    toolchain("slow", SLOW)
    secrets = {}
    for name, kind, extra in (
        (
            "gh",
            "github",
            [
                "--param",
                "branch=${{ payload.ref }}",
                "--param",
                "who=${{ payload.pusher.name }}",
                "--if",
                "startsWith(payload.ref, 'refs/heads/')",
            ],
        ),
        ("gl", "gitlab", ["--param", "branch=${{ payload.ref }}"]),
        ("own", "toolrun", ["--param", "branch=${{ query.branch }}"]),
    ):
        made = toolrun(
            "hook", "create", name, "--toolchain", "deploy", "--secret-file",
            f"{name}.secret", "--kind", kind, *extra,
        )  # fmt: skip
        assert made.returncode == 0, made.stderr
        secrets[name] = (workdir / f"{name}.secret").read_bytes().strip()
        assert (workdir / f"{name}.secret").stat().st_mode & 0o077 == 0
    busy = toolrun(
        "hook", "create", "busy", "--toolchain", "slow", "--secret-file", "own.secret",
        "--kind", "toolrun", "--max-parallel", "1",
    )  # fmt: skip
    assert busy.returncode == 0, busy.stderr
    secrets["busy"] = secrets["own"]
    assert toolrun("daemon", "token", "create", "ci").returncode == 0  # other routes need it
    return daemon(), secrets


def runs(home: Path) -> dict[str, object]:
    from toolrun.history.store import HistoryQuery

    store = Store(home)
    try:
        return {r.id: r for r in store.list_runs(HistoryQuery(limit=100))}
    finally:
        store.close()


def test_a_github_delivery_starts_the_toolchain_with_its_payload_as_params(
    hooked: tuple[DaemonProcess, dict[str, bytes]], toolrun_home: Path
) -> None:
    process, secrets = hooked
    body = json.dumps({"ref": "refs/heads/main", "pusher": {"name": "mei"}}).encode()
    answer = httpx.post(
        f"{process.url}/hooks/gh", content=body, headers=github(secrets["gh"], body, "d-1")
    )
    assert answer.status_code == 202, answer.text
    shown = answer.json()
    assert shown["ran"] is True
    assert shown["url"] == f"{process.url}/api/v1/runs/{shown['id']}"
    assert shown["page"] == f"{process.url}/ui/runs/{shown['id']}"
    # The other routes still want the bearer token the hook did without.
    assert httpx.get(shown["url"]).status_code == 401
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        record = runs(toolrun_home)[shown["id"]]
        if record.status == "succeeded":  # type: ignore[attr-defined]
            break
        time.sleep(0.05)
    assert (record.origin, record.requester) == ("hook", "gh")  # type: ignore[attr-defined]
    assert record.params == {"branch": "refs/heads/main", "who": "mei"}  # type: ignore[attr-defined]
    # The same delivery again is a replay, refused.
    again = httpx.post(
        f"{process.url}/hooks/gh", content=body, headers=github(secrets["gh"], body, "d-1")
    )
    assert again.status_code == 401
    assert again.json()["error"] == "replayed"


def test_github_signatures_that_do_not_hold_are_refused_and_logged_without_the_secret(
    hooked: tuple[DaemonProcess, dict[str, bytes]],
) -> None:
    process, secrets = hooked
    body = b'{"ref": "refs/heads/main"}'
    forged = github(b"not-the-secret-at-all", body, "d-2")
    answer = httpx.post(f"{process.url}/hooks/gh", content=body, headers=forged)
    assert (answer.status_code, answer.json()["error"]) == (401, "bad_signature")
    assert "X-Hub-Signature-256 does not match" in answer.json()["message"]
    # A valid signature of another body: the body was changed on the way.
    signed = github(secrets["gh"], b'{"ref": "refs/heads/dev"}', "d-3")
    assert httpx.post(f"{process.url}/hooks/gh", content=body, headers=signed).status_code == 401
    unsigned = httpx.post(f"{process.url}/hooks/gh", json={"ref": "refs/heads/main"})
    assert (unsigned.status_code, unsigned.json()["error"]) == (401, "unsigned")
    deadline = time.monotonic() + 10  # the log is read from the daemon's stderr as it comes
    while len(process.events("hook_refused")) < 3 and time.monotonic() < deadline:
        time.sleep(0.02)
    refused = process.events("hook_refused")
    assert [e["reason"] for e in refused] == ["bad_signature", "bad_signature", "unsigned"]
    log = "".join(process.raw)
    assert secrets["gh"].decode() not in log
    assert forged["X-Hub-Signature-256"] not in log


def test_a_filtered_delivery_answers_202_without_a_run(
    hooked: tuple[DaemonProcess, dict[str, bytes]], toolrun_home: Path
) -> None:
    process, secrets = hooked
    body = b'{"ref": "refs/tags/v1.0"}'
    answer = httpx.post(
        f"{process.url}/hooks/gh", content=body, headers=github(secrets["gh"], body, "d-4")
    )
    assert answer.status_code == 202
    assert answer.json() == {
        "ran": False,
        "reason": "if: startsWith(payload.ref, 'refs/heads/') is false for this delivery",
    }
    assert runs(toolrun_home) == {}


def test_a_missing_payload_field_reads_as_empty(
    hooked: tuple[DaemonProcess, dict[str, bytes]], toolrun_home: Path
) -> None:
    process, secrets = hooked
    body = b'{"ref": "refs/heads/x"}'  # no pusher
    answer = httpx.post(
        f"{process.url}/hooks/gh", content=body, headers=github(secrets["gh"], body, "d-5")
    )
    assert answer.status_code == 202
    record = runs(toolrun_home)[answer.json()["id"]]
    assert record.params["who"] == ""  # type: ignore[attr-defined]


def test_gitlab_sends_its_token_which_config_keeps_only_as_a_hash(
    hooked: tuple[DaemonProcess, dict[str, bytes]], toolrun_home: Path, workdir: Path
) -> None:
    process, secrets = hooked
    config = (toolrun_home / "config.toml").read_text()
    assert secrets["gl"].decode() not in config
    assert hashlib.sha256(secrets["gl"]).hexdigest() in config
    payload = {"ref": "main", "object_kind": "push"}
    headers = {"X-Gitlab-Token": secrets["gl"].decode(), "X-Gitlab-Event-UUID": "u-1"}
    answer = httpx.post(f"{process.url}/hooks/gl", json=payload, headers=headers)
    assert answer.status_code == 202, answer.text
    assert runs(toolrun_home)[answer.json()["id"]].params["branch"] == "main"  # type: ignore[attr-defined]
    wrong = httpx.post(f"{process.url}/hooks/gl", json=payload, headers={"X-Gitlab-Token": "x"})
    assert wrong.status_code == 401
    replayed = httpx.post(f"{process.url}/hooks/gl", json=payload, headers=headers)
    assert replayed.json()["error"] == "replayed"


def test_toolrun_signatures_carry_a_time_and_are_taken_once(
    hooked: tuple[DaemonProcess, dict[str, bytes]], toolrun: Toolrun, workdir: Path
) -> None:
    process, secrets = hooked
    body = b"{}"
    url = f"{process.url}/hooks/own?branch=release"
    (workdir / "body.json").write_bytes(body)
    signed = toolrun("hook", "sign", "own", "body.json")
    assert signed.returncode == 0, signed.stderr
    header = {"X-Toolrun-Signature": signed.stdout.strip(), "Content-Type": "application/json"}
    first = httpx.post(url, content=body, headers=header)
    assert first.status_code == 202, first.text
    again = httpx.post(url, content=body, headers=header)
    assert (again.status_code, again.json()["error"]) == (401, "replayed")
    old = {"X-Toolrun-Signature": sign(secrets["own"], body, time.time() - 600)}
    stale = httpx.post(url, content=body, headers=old)
    assert (stale.status_code, stale.json()["error"]) == (401, "replayed")
    assert "signatures are taken for 300 s" in stale.json()["message"]
    garbled = httpx.post(url, content=body, headers={"X-Toolrun-Signature": "nonsense"})
    assert garbled.status_code == 401
    assert "t=UNIX_SECONDS,v1=HEX_HMAC" in garbled.json()["message"]


def test_a_hook_payload_may_not_name_paths_outside_the_workspace(
    hooked: tuple[DaemonProcess, dict[str, bytes]], toolrun_home: Path
) -> None:
    process, secrets = hooked
    body = b'{"ref": "refs/heads/../../../etc/passwd"}'
    answer = httpx.post(
        f"{process.url}/hooks/gh", content=body, headers=github(secrets["gh"], body, "d-6")
    )
    assert answer.status_code == 400
    assert answer.json()["field"] == "params.branch"
    assert runs(toolrun_home) == {}
    # Not taken, so the same delivery may come again once fixed at the sender (a redelivery).
    assert (
        httpx.post(
            f"{process.url}/hooks/gh", content=body, headers=github(secrets["gh"], body, "d-6")
        ).json()["error"]
        == "bad_request"
    )


def test_max_parallel_answers_429_while_the_hook_is_full(
    hooked: tuple[DaemonProcess, dict[str, bytes]],
) -> None:
    process, secrets = hooked
    url = f"{process.url}/hooks/busy"
    first = httpx.post(
        url, content=b"{}", headers={"X-Toolrun-Signature": sign(secrets["busy"], b"{}")}
    )
    assert first.status_code == 202, first.text
    body = b'{"n": 2}'
    second = httpx.post(
        url, content=body, headers={"X-Toolrun-Signature": sign(secrets["busy"], body)}
    )
    assert second.status_code == 429
    assert second.headers["Retry-After"]
    assert "1 runs going" in second.json()["message"]


def test_bad_deliveries_get_a_4xx_with_a_json_body(
    hooked: tuple[DaemonProcess, dict[str, bytes]],
) -> None:
    process, secrets = hooked
    big = b'{"x": "' + b"a" * (10 * 1024 * 1024) + b'"}'
    answer = httpx.post(
        f"{process.url}/hooks/gh", content=big, headers=github(secrets["gh"], big, "d-7")
    )
    assert answer.status_code == 413
    assert answer.json()["error"] == "too_large"
    missing = httpx.post(f"{process.url}/hooks/nothere", content=b"{}")
    assert (missing.status_code, missing.json()["error"]) == (404, "not_found")
    assert httpx.get(f"{process.url}/hooks/gh").status_code == 405
    body = b"not json"
    garbage = httpx.post(
        f"{process.url}/hooks/gh", content=body, headers=github(secrets["gh"], body, "d-8")
    )
    assert garbage.status_code == 400
    # A browser on another site cannot post to it.
    cross = httpx.post(
        f"{process.url}/hooks/gh",
        content=b"{}",
        headers={"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"},
    )
    assert cross.status_code == 403


def test_a_github_form_delivery_is_read_too(
    hooked: tuple[DaemonProcess, dict[str, bytes]], toolrun_home: Path
) -> None:
    from urllib.parse import urlencode

    process, secrets = hooked
    body = urlencode({"payload": json.dumps({"ref": "refs/heads/form"})}).encode()
    headers = github(secrets["gh"], body, "d-9")
    headers["Content-Type"] = "application/x-www-form-urlencoded"
    answer = httpx.post(f"{process.url}/hooks/gh", content=body, headers=headers)
    assert answer.status_code == 202, answer.text
    assert runs(toolrun_home)[answer.json()["id"]].params["branch"] == "refs/heads/form"  # type: ignore[attr-defined]


def test_a_hook_that_config_gets_wrong_stops_the_daemon_with_its_place(
    toolrun: Toolrun, toolrun_home: Path
) -> None:
    (toolrun_home / "config.toml").write_text(
        "[[hooks]]\nname = 'x'\ntoolchain = 'deploy'\nkind = 'github'\n"
        "secret_file = 'nowhere.secret'\n"
    )
    started = toolrun("daemon", "-p", "0")
    assert started.returncode == 3
    assert "hooks[0].secret_file: cannot read" in started.stderr
    (toolrun_home / "config.toml").write_text(
        "[[hooks]]\nname = 'x'\ntoolchain = 'deploy'\nkind = 'gitlab'\ntoken_sha256 = 'ab'\n"
        "[hooks.params]\nb = '${{ secrets.x }}'\n"
    )
    started = toolrun("daemon", "-p", "0")
    assert started.returncode == 3
    assert "hooks[0].token_sha256 must be the 64 hex digits" in started.stderr


def test_hook_create_refuses_before_it_makes_a_secret(
    toolrun: Toolrun, toolchain: WriteToolchain, workdir: Path
) -> None:
    toolchain("deploy", DEPLOY)
    bad = toolrun(
        "hook", "create", "x", "--toolchain", "deploy", "--secret-file", "x.secret",
        "--param", "b=${{ secrets.token }}",
    )  # fmt: skip
    assert bad.returncode == 3
    assert "an expression reads 'secrets.token'; hooks can read payload" in bad.stderr
    assert not (workdir / "x.secret").exists()
    unknown = toolrun("hook", "create", "x", "--toolchain", "nope", "--secret-file", "x.secret")
    assert unknown.returncode == 4
    assert not (workdir / "x.secret").exists()
