"""End to end: the real `toolrun run` at a real terminal (tmux), keys sent as a user would."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from conftest import StartDaemon, WriteToolchain


def capture(session: str) -> str:
    return subprocess.run(
        ["tmux", "capture-pane", "-p", "-t", session], capture_output=True, text=True
    ).stdout


def wait_for(session: str, text: str, seconds: float = 30) -> str:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        screen = capture(session)
        if text in screen:
            return screen
        time.sleep(0.1)
    pytest.fail(f"{text!r} never appeared; the screen was:\n{capture(session)}")


def test_run_in_tmux_shows_steps_and_c_then_y_cancels_with_130(
    probe: Path, toolchain: WriteToolchain, workdir: Path, toolrun_home: Path
) -> None:
    toolchain(
        "slow",
        "toolchain:\n"
        "  - hello: {cmd: probe, args: [echo, hello from the tui]}\n"
        "  - wait: {cmd: probe, args: [sleep, '60']}\n",
    )
    toolrun = Path(sys.executable).with_name("toolrun")
    session = f"toolrun-{uuid.uuid4().hex[:8]}"
    command = (
        # CI is unset as a person's terminal would have it: with CI set, run prints plain lines.
        f"cd {shlex.quote(str(workdir))} && env -u CI "
        f"TOOLRUN_HOME={shlex.quote(str(toolrun_home))} "
        f"{shlex.quote(str(toolrun))} run slow; echo EXIT=$?; sleep 60"
    )
    env_args = ["-e", "TERM=xterm-256color"]
    subprocess.run(
        ["tmux", "new-session", "-d", "-s", session, "-x", "100", "-y", "30", *env_args, command],
        check=True,
    )
    try:
        screen = wait_for(session, "sleeping")
        assert "hello from the tui" in screen
        assert "hello" in screen and "wait" in screen  # the step list
        subprocess.run(["tmux", "send-keys", "-t", session, "c"], check=True)
        wait_for(session, "n no")  # the confirmation
        subprocess.run(["tmux", "send-keys", "-t", session, "y"], check=True)
        wait_for(session, "cancelled")
        subprocess.run(["tmux", "send-keys", "-t", session, "q"], check=True)
        screen = wait_for(session, "EXIT=")
        assert "EXIT=130" in screen
        assert "run " in screen and "cancelled" in screen  # the summary left in the scrollback
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], check=False)


def test_history_in_tmux_opens_the_browser_and_q_leaves(
    probe: Path, workdir: Path, toolrun_home: Path
) -> None:
    toolrun = Path(sys.executable).with_name("toolrun")
    made = subprocess.run(
        [str(toolrun), "exec", "probe", "echo", "x"],
        cwd=workdir,
        env={**os.environ, "TOOLRUN_HOME": str(toolrun_home)},
        capture_output=True,
        text=True,
    )
    assert made.returncode == 0, made.stderr
    session = f"toolrun-{uuid.uuid4().hex[:8]}"
    command = (
        f"cd {shlex.quote(str(workdir))} && env -u CI "
        f"TOOLRUN_HOME={shlex.quote(str(toolrun_home))} "
        f"{shlex.quote(str(toolrun))} history; echo EXIT=$?; sleep 60"
    )
    subprocess.run(
        [
            "tmux",
            "new-session",
            "-d",
            "-s",
            session,
            "-x",
            "120",
            "-y",
            "30",
            "-e",
            "TERM=xterm-256color",
            command,
        ],
        check=True,
    )
    try:
        screen = wait_for(session, "succeeded")
        assert "probe" in screen and "toolchain" in screen  # the table and its headings
        subprocess.run(["tmux", "send-keys", "-t", session, "q"], check=True)
        assert "EXIT=0" in wait_for(session, "EXIT=")
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], check=False)


def test_a_remote_run_in_tmux_shows_the_same_view(
    daemon: StartDaemon, toolchain: WriteToolchain, tmp_path: Path
) -> None:
    toolchain(
        "slow",
        "toolchain:\n"
        "  - hello: {cmd: probe, args: [echo, hello from the daemon]}\n"
        "  - wait: {cmd: probe, args: [sleep, '60']}\n",
    )
    server = daemon()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    toolrun = Path(sys.executable).with_name("toolrun")
    session = f"toolrun-{uuid.uuid4().hex[:8]}"
    command = (
        f"cd {shlex.quote(str(elsewhere))} && env -u CI "
        f"TOOLRUN_HOME={shlex.quote(str(elsewhere / 'home'))} "
        f"{shlex.quote(str(toolrun))} --remote {server.url} run slow; echo EXIT=$?; sleep 60"
    )
    size = ["-x", "100", "-y", "30", "-e", "TERM=xterm-256color"]
    subprocess.run(["tmux", "new-session", "-d", "-s", session, *size, command], check=True)
    try:
        screen = wait_for(session, "sleeping")
        assert "hello from the daemon" in screen and "probe 2.0.0" in screen
        subprocess.run(["tmux", "send-keys", "-t", session, "c"], check=True)
        wait_for(session, "n no")
        subprocess.run(["tmux", "send-keys", "-t", session, "y"], check=True)
        wait_for(session, "cancelled")
        subprocess.run(["tmux", "send-keys", "-t", session, "q"], check=True)
        screen = wait_for(session, "EXIT=")
        assert "EXIT=130" in screen and "cancelled" in screen
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], check=False)
