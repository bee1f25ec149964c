"""Notifications received by stand-ins for DingTalk, Feishu, WeCom and a webhook consumer that
check each signature as the real services do: from a terminal's run and from a daemon's, with
retries, Retry-After, an endpoint down for good, an error code in a 200 body, and an outbox
that survives a daemon killed with SIGKILL."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import StartDaemon, Toolrun, WriteToolchain
from robots import Robots, config_for, robots

FLAKY = """params:
  fail: {default: 'yes'}
toolchain:
  - prepare: {cmd: probe, args: [echo, preparing]}
  - convert:
      cmd: probe
      args: [fail, "${{ params.fail == 'yes' && '3' || '0' }}"]
"""
FAST = "notify_retry = '0.2s'\nnotify_give_up = '3s'\n"


@pytest.fixture
def stand_ins() -> Iterator[Robots]:
    with robots() as state:
        yield state


def write_config(home: Path, text: str) -> None:
    (home / "config.toml").write_text(text, encoding="utf-8")


def wait_for(predicate: object, seconds: float = 15) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.05)
    raise AssertionError("timed out waiting")


def outbox(toolrun: Toolrun) -> list[dict[str, object]]:
    listed = toolrun("notify", "list", "--all", "--json")
    assert listed.returncode == 0, listed.stderr
    return json.loads(listed.stdout)  # type: ignore[no-any-return]


def test_a_failed_terminal_run_tells_dingtalk_signed_with_the_failed_steps_last_lines(
    stand_ins: Robots,
    toolrun: Toolrun,
    toolchain: WriteToolchain,
    toolrun_home: Path,
    probe: Path,
) -> None:
    toolchain("convert", FLAKY)
    write_config(
        toolrun_home,
        config_for(
            stand_ins,
            toolrun_home,
            rules="[[notify]]\nchannels = ['ding']\non = ['failed']\n",
            extra="public_url = 'https://toolrun.example.com'\n",
        ),
    )
    ran = toolrun("run", "convert", "--plain")
    assert ran.returncode == 1
    [message] = stand_ins.of("dingtalk")
    body = message["body"]
    text = body["markdown"]["text"]
    run_id = json.loads(toolrun("history", "--json").stdout)[0]["id"]
    assert body["markdown"]["title"] == "❌ convert failed"
    assert f"[{run_id}](https://toolrun.example.com/ui/runs/{run_id})" in text
    assert "Failed step: convert (exit 3)" in text
    assert "Last lines:\n\n> failing\n" in text  # the step's last line
    assert "@13800000000 @mei" in text  # a markdown message reaches only those it names
    assert body["at"] == {"atMobiles": ["13800000000"], "atUserIds": ["mei"], "isAtAll": False}
    assert "Started by:" in text and "(terminal)" in text
    [row] = outbox(toolrun)
    assert (row["status"], row["event"], row["channel"]) == ("sent", "failed", "ding")
    # A success that is not a recovery tells nobody: the rule is on failed only.
    assert toolrun("run", "convert", "fail=no").returncode == 0
    assert len(stand_ins.of("dingtalk")) == 1


def test_recovered_reaches_feishu_wecom_and_a_webhook_each_signed_their_way(
    stand_ins: Robots,
    toolrun: Toolrun,
    toolchain: WriteToolchain,
    toolrun_home: Path,
    probe: Path,
) -> None:
    toolchain("convert", FLAKY)
    rules = (
        "[[notify]]\nchannels = ['lark', 'wx', 'hook']\non = ['recovered']\n"
        "toolchains = ['convert']\n"
    )
    write_config(toolrun_home, config_for(stand_ins, toolrun_home, rules=rules))
    assert toolrun("run", "convert").returncode == 1  # failed: not in `on`
    assert stand_ins.received == []
    assert toolrun("run", "convert", "fail=no").returncode == 0  # recovered
    assert toolrun("run", "convert", "fail=no").returncode == 0  # a plain success
    assert stand_ins.refused == []
    [lark], [wx], [hook] = stand_ins.of("feishu"), stand_ins.of("wecom"), stand_ins.of("webhook")
    card = lark["body"]["card"]
    assert card["header"]["title"]["content"] == "🔁 convert 已恢复（失败后再次成功）"
    assert card["header"]["template"] == "green"
    assert "耗时" in card["elements"][0]["content"]
    assert wx["body"]["markdown"]["content"].startswith("### 🔁 convert recovered")
    assert hook["body"]["event"] == "recovered"
    assert hook["body"]["run"]["status"] == "succeeded"
    assert hook["headers"]["X-Toolrun-Delivery"] == str(hook["body"]["delivery"])


def test_an_error_code_in_a_200_body_is_a_failure_retried_by_the_daemon(
    stand_ins: Robots,
    toolrun: Toolrun,
    toolchain: WriteToolchain,
    toolrun_home: Path,
    daemon: StartDaemon,
) -> None:
    toolchain("convert", FLAKY)
    rules = "[[notify]]\nchannels = ['ding']\non = ['failed']\n"
    write_config(
        toolrun_home, "notify_retry = '0.3s'\n" + config_for(stand_ins, toolrun_home, rules=rules)
    )
    stand_ins.mode = "error"
    ran = toolrun("run", "convert")
    assert ran.returncode == 1
    assert (
        "notification to ding not sent: dingtalk answered code 310000: keywords not in"
        in ran.stderr
    )
    assert "left in the outbox for a daemon on this store" in ran.stderr
    [row] = outbox(toolrun)
    assert row["status"] == "pending"
    assert "dingtalk answered code 310000" in str(row["last_error"])
    listed = toolrun("notify", "list")
    assert "pending" in listed.stdout and "310000" in listed.stdout
    stand_ins.mode = "ok"
    process = daemon()  # a daemon on the same store sends what the terminal could not
    wait_for(lambda: outbox(toolrun)[0]["status"] == "sent")
    assert len(stand_ins.of("dingtalk")) == 1
    process.stop()
    assert [e["outcome"] for e in process.events("notification")] == ["sent"]


def test_retry_after_is_honoured(
    stand_ins: Robots,
    toolrun: Toolrun,
    toolchain: WriteToolchain,
    toolrun_home: Path,
    daemon: StartDaemon,
) -> None:
    toolchain("convert", FLAKY)
    rules = "[[notify]]\nchannels = ['ding']\non = ['failed']\n"
    write_config(toolrun_home, FAST + config_for(stand_ins, toolrun_home, rules=rules))
    process = daemon()
    stand_ins.mode = "busy"  # 429 with Retry-After: 1 once
    started = time.time()
    answer = __import__("httpx").post(
        f"{process.url}/api/v1/runs", json={"toolchain": "convert"}, timeout=10
    )
    assert answer.status_code == 202
    wait_for(lambda: len(process.events("notification")) == 2)
    assert stand_ins.of("dingtalk")[0]["at"] - started >= 1.0
    outcomes = [e["outcome"] for e in process.events("notification")]
    assert outcomes == ["retry", "sent"]


def test_an_endpoint_down_for_good_is_marked_failed_and_the_run_is_not_affected(
    stand_ins: Robots,
    toolrun: Toolrun,
    toolchain: WriteToolchain,
    toolrun_home: Path,
    daemon: StartDaemon,
) -> None:
    toolchain("convert", FLAKY)
    rules = "[[notify]]\nchannels = ['wx']\non = ['succeeded']\n"
    write_config(toolrun_home, FAST + config_for(stand_ins, toolrun_home, rules=rules))
    stand_ins.mode = "down"
    process = daemon()
    answer = __import__("httpx").post(
        f"{process.url}/api/v1/runs", json={"toolchain": "convert", "params": {"fail": "no"}}
    )
    run_id = answer.json()["id"]
    wait_for(lambda: outbox(toolrun) and outbox(toolrun)[0]["status"] == "failed")
    [row] = outbox(toolrun)
    assert str(row["last_error"]).startswith("HTTP 503: <html>503 Service Temporarily")
    assert "tried" in str(row["last_error"])
    assert int(row["attempts"]) >= 3  # type: ignore[call-overload]
    run = json.loads(toolrun("show", run_id, "--json").stdout)
    assert run["status"] == "succeeded"
    listed = toolrun("notify", "list")
    assert "failed" in listed.stdout
    process.stop()


def test_the_outbox_survives_a_daemon_killed_and_sends_once(
    stand_ins: Robots,
    toolrun: Toolrun,
    toolchain: WriteToolchain,
    toolrun_home: Path,
    daemon: StartDaemon,
) -> None:
    toolchain("convert", FLAKY)
    rules = "[[notify]]\nchannels = ['ding', 'hook']\non = ['failed']\n"
    write_config(
        toolrun_home,
        "notify_retry = '0.3s'\nnotify_give_up = '1h'\n"
        + config_for(stand_ins, toolrun_home, rules=rules),
    )
    stand_ins.mode = "down"
    first = daemon()
    __import__("httpx").post(f"{first.url}/api/v1/runs", json={"toolchain": "convert"})
    wait_for(lambda: len([e for e in first.events("notification") if e["outcome"] == "retry"]) >= 2)
    first.process.kill()  # SIGKILL: nothing of the daemon's own runs at exit
    first.process.wait()
    assert {row["status"] for row in outbox(toolrun)} == {"pending"}
    stand_ins.mode = "ok"
    second = daemon()
    wait_for(lambda: {row["status"] for row in outbox(toolrun)} == {"sent"})
    time.sleep(1.5)  # long enough for a second sending, if there were to be one
    second.stop()
    assert len(stand_ins.of("dingtalk")) == 1
    assert len(stand_ins.of("webhook")) == 1


def test_notify_test_sends_a_message_and_says_what_the_channel_answered(
    stand_ins: Robots, toolrun: Toolrun, toolrun_home: Path
) -> None:
    write_config(toolrun_home, config_for(stand_ins, toolrun_home, rules=""))
    sent = toolrun("notify", "test", "ding")
    assert sent.returncode == 0, sent.stdout + sent.stderr
    assert "sent a test message to ding (dingtalk, http://127.0.0.1" in sent.stdout
    assert TOKEN_HIDDEN(sent.stdout)
    [message] = stand_ins.of("dingtalk")
    assert message["body"]["markdown"]["title"] == "🔔 a test message from toolrun"
    (toolrun_home / "robot.secret").write_text("SEC-the-wrong-secret")
    wrong = toolrun("notify", "test", "ding")
    assert wrong.returncode == 1
    assert "did not take it: dingtalk answered code 310000: sign not match" in wrong.stdout
    missing = toolrun("notify", "test", "nowhere")
    assert missing.returncode == 4
    assert "no channel named 'nowhere' (known: ding, lark, wx, hook)" in missing.stderr


def TOKEN_HIDDEN(text: str) -> bool:
    from robots import TOKEN

    return TOKEN not in text


def test_bad_channels_and_rules_stop_the_daemon_and_the_run_with_their_place(
    toolrun: Toolrun, toolrun_home: Path, toolchain: WriteToolchain, probe: Path
) -> None:
    toolchain("convert", FLAKY)
    write_config(toolrun_home, "[[channels]]\nname = 'x'\nkind = 'slack'\nurl = 'http://h/'\n")
    assert "channels[0].kind must be one of dingtalk" in toolrun("daemon", "-p", "0").stderr
    write_config(
        toolrun_home,
        "[[channels]]\nname = 'x'\nkind = 'wecom'\nurl = 'http://h/'\n"
        "[[notify]]\nchannels = ['y']\n",
    )
    ran = toolrun("run", "convert")
    assert ran.returncode == 3
    assert "notify[0].channels: no channel named 'y' (known: x)" in ran.stderr
    write_config(
        toolrun_home,
        "[[channels]]\nname = 'x'\nkind = 'wecom'\nurl = 'http://h/'\n"
        "[[notify]]\nchannels = ['x']\non = ['exploded']\n",
    )
    assert "notify[0].on: 'exploded' is not one of failed" in toolrun("run", "convert").stderr


def test_a_lone_exec_tells_only_rules_that_name_its_tool(
    stand_ins: Robots, toolrun: Toolrun, toolrun_home: Path, probe: Path
) -> None:
    rules = (
        "[[notify]]\nchannels = ['wx']\non = ['failed']\n"
        "[[notify]]\nchannels = ['ding']\non = ['failed']\ntoolchains = ['probe']\n"
    )
    write_config(toolrun_home, config_for(stand_ins, toolrun_home, rules=rules))
    ran = toolrun("exec", "probe", "fail", "4")  # the fast path, without typer
    assert ran.returncode == 4
    assert [m["kind"] for m in stand_ins.received] == ["dingtalk"]
    assert "probe failed" in stand_ins.received[0]["body"]["markdown"]["title"]
