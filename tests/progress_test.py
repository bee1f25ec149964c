"""Progress bars where work takes long: at a terminal (a real pseudo-terminal) `tool install`,
`tool upgrade` and `registry build` draw rich's bars on stderr; in a pipe nothing extra."""

from __future__ import annotations

import os
import pty
import subprocess
import sys
import time
from pathlib import Path

from conftest import Serve, Toolrun, write_tool


def at_a_terminal(args: list[str], cwd: Path) -> tuple[int, str]:
    """Run `toolrun ARGS` with a pseudo-terminal for stdin, stdout and stderr."""
    env = {**os.environ, "TERM": "xterm-256color", "COLUMNS": "100"}
    env.pop("CI", None)
    leader, follower = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "toolrun", *args],
        stdin=follower,
        stdout=follower,
        stderr=follower,
        cwd=cwd,
        env=env,
    )
    os.close(follower)
    out = b""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the terminal's far end closed: the process is done
            break
        if not chunk:
            break
        out += chunk
    os.close(leader)
    return process.wait(30), out.decode("utf-8", "replace")


def published(registry: Path, tmp_path: Path, toolrun: Toolrun, serve: Serve) -> None:
    write_tool(registry, "big", "1.0.0", extra_files={"data.bin": os.urandom(3_000_000)})
    out = tmp_path / "published"
    assert toolrun("registry", "build", str(registry), str(out)).returncode == 0
    assert toolrun("registry", "add", "team", serve(out)).returncode == 0
    registry.rename(registry.parent / "source")


def test_install_draws_a_bar_with_bytes_and_speed_at_a_terminal(
    registry: Path, tmp_path: Path, toolrun: Toolrun, serve: Serve, workdir: Path
) -> None:
    published(registry, tmp_path, toolrun, serve)
    code, screen = at_a_terminal(["tool", "install", "big"], workdir)
    assert code == 0, screen
    assert "big 1.0.0" in screen and "━" in screen
    assert "/3.0 MB" in screen and "/s" in screen  # bytes of the total, and a speed
    assert "installed big 1.0.0 from team" in screen


def test_upgrade_and_build_draw_bars_too(
    registry: Path, tmp_path: Path, toolrun: Toolrun, serve: Serve, workdir: Path
) -> None:
    code, screen = at_a_terminal(["registry", "build", str(registry), str(tmp_path / "a")], workdir)
    assert code == 0, screen
    assert "building" in screen and "4/4" in screen  # four tool versions, counted
    published(registry, tmp_path, toolrun, serve)
    assert toolrun("tool", "install", "hello==1.0.0").returncode == 0
    code, screen = at_a_terminal(["tool", "upgrade", "hello"], workdir)
    assert code == 0, screen
    assert "hello 1.1.0" in screen and "━" in screen and "hello 1.0.0 -> 1.1.0" in screen


def test_in_a_pipe_nothing_extra_is_written(
    registry: Path, tmp_path: Path, toolrun: Toolrun, serve: Serve
) -> None:
    published(registry, tmp_path, toolrun, serve)
    result = toolrun("tool", "install", "big", env={"TERM": "xterm-256color"})
    assert result.returncode == 0
    assert "━" not in result.stderr + result.stdout and "\x1b" not in result.stderr
    assert result.stdout.startswith("installed big 1.0.0 from team")
