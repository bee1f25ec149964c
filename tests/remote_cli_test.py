"""`toolrun --remote URL ...`: the same commands, output and exit codes, acting on a daemon."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from conftest import DaemonProcess, StartDaemon, WriteToolchain, run_toolrun

if TYPE_CHECKING:  # imported where they are needed, as the tests below import them
    from textual.pilot import Pilot

    from toolrun.tui.run_app import RunApp


class RemoteCli:
    """Runs the CLI against ``server`` from a machine with nothing local (``elsewhere``)."""

    def __init__(self, server: DaemonProcess, elsewhere: Path) -> None:
        self.server = server
        self.elsewhere = elsewhere

    def __call__(self, *args: str, token: str | None = None) -> subprocess.CompletedProcess[str]:
        env = {"TOOLRUN_HOME": str(self.elsewhere / "home")}
        if token:
            env["TOOLRUN_TOKEN"] = token
        return run_toolrun("--remote", self.server.url, *args, cwd=self.elsewhere, env=env)


@pytest.fixture
def remote(daemon: StartDaemon, toolchain: WriteToolchain, tmp_path: Path) -> RemoteCli:
    """A daemon, and a function running the CLI against it from a machine with nothing local."""
    toolchain(
        "two",
        "params:\n  word: {type: string, default: hello}\n"
        "toolchain:\n"
        "  - first: {cmd: probe, args: [echo, '${{ params.word }}']}\n"
        "  - second: {cmd: probe, args: [stderr, careful], needs: [first]}\n",
    )
    toolchain("broken", "toolchain:\n  - boom: {cmd: probe, args: [fail, '3']}\n")
    server = daemon()
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "home").mkdir(parents=True)
    return RemoteCli(server, elsewhere)


def test_run_prints_the_steps_and_exits_as_a_local_run_would(remote: RemoteCli) -> None:
    done = remote("run", "two", "word=remote")
    assert done.returncode == 0, done.stderr
    assert "first  | remote" in done.stdout and "second ! careful" in done.stdout
    assert "succeeded in" in done.stdout  # the summary
    failed = remote("run", "broken")
    assert failed.returncode == 1
    assert "failed" in failed.stdout
    as_json = remote("run", "two", "--json")
    kinds = [json.loads(line)["kind"] for line in as_json.stdout.splitlines()]
    assert kinds[0] == "run_started" and kinds[-1] == "run_finished"


def test_bad_input_keeps_local_exit_codes(remote: RemoteCli) -> None:
    unknown_param = remote("run", "two", "colour=red")
    assert unknown_param.returncode == 2 and "colour" in unknown_param.stderr
    assert remote("run", "nope").returncode == 4  # an unknown toolchain: as the local command
    missing = remote("show", "20990101000000-1")
    assert missing.returncode == 4 and "no run" in missing.stderr
    assert remote("show", "../etc").returncode == 4  # never a path on the daemon
    assert remote("history", "delete", "20990101000000-1").returncode == 2


def test_exec_passes_output_and_the_tools_exit_code_through(remote: RemoteCli) -> None:
    echoed = remote("exec", "probe", "echo", "one", "two")
    assert echoed.returncode == 0 and echoed.stdout == "one\ntwo\n"
    failed = remote("exec", "probe@1.0.0", "fail", "3")
    assert failed.returncode == 3 and failed.stdout == "failing\n"
    to_stderr = remote("exec", "probe==2.0.0", "--", "stderr", "oops")
    assert to_stderr.stdout == "" and to_stderr.stderr == "oops\n"


def test_history_show_logs_and_result_read_the_daemons_runs(remote: RemoteCli) -> None:
    remote("run", "two")
    remote("run", "broken")
    local = json.loads(run_toolrun("history", "--json").stdout)  # the daemon's own store
    over_http = json.loads(remote("history", "--json").stdout)
    assert over_http == local and len(local) == 2
    failed_id = local[0]["id"]
    assert [
        r["id"] for r in json.loads(remote("history", "--json", "--status", "failed").stdout)
    ] == [failed_id]
    shown = remote("show", failed_id)
    assert shown.returncode == 0 and "boom" in shown.stdout and "daemon" in shown.stdout
    assert json.loads(remote("show", failed_id, "--json").stdout) == json.loads(
        run_toolrun("show", failed_id, "--json").stdout
    )
    assert remote("logs", local[1]["id"]).stdout == run_toolrun("logs", local[1]["id"]).stdout
    result = remote("result", failed_id)
    assert result.returncode == 1 and result.stdout == "failing\n"


def test_logs_follow_result_while_running_and_cancel(remote: RemoteCli) -> None:
    started = remote("exec", "probe", "echo", "warm-up")  # installs probe on the daemon
    assert started.returncode == 0
    url = remote.server.url
    run_id = subprocess.run(
        # 4 s of output: still running when asked for, even beside three other workers
        ["curl", "-s", f"{url}/cmd/probe/drip/40/0.1?onlyid=true"],
        capture_output=True,
        text=True,
    ).stdout
    pending = remote("result", run_id)
    assert pending.returncode == 75 and "still" in pending.stderr
    followed = remote("logs", "-f", run_id)
    assert followed.returncode == 0
    assert [line for line in followed.stdout.splitlines() if line.startswith("drip")] == [
        f"drip {i}" for i in range(40)
    ]
    sleeper = subprocess.run(
        ["curl", "-s", f"{url}/cmd/probe/sleep/60?onlyid=true"], capture_output=True, text=True
    ).stdout
    cancelled = remote("cancel", sleeper)
    assert cancelled.returncode == 0 and "cancel requested" in cancelled.stdout
    for _ in range(100):
        status = json.loads(remote("show", sleeper, "--json").stdout)["status"]
        if status == "cancelled":
            break
        time.sleep(0.1)
    assert status == "cancelled"
    assert remote("cancel", sleeper).returncode == 2  # already ended


def test_rerun_runs_it_again_on_the_daemon(remote: RemoteCli) -> None:
    remote("run", "two", "word=again")
    first = json.loads(remote("history", "--json").stdout)[0]
    again = remote("rerun", first["id"])
    assert again.returncode == 0 and "first  | again" in again.stdout
    newest = json.loads(remote("history", "--json").stdout)[0]
    assert newest["rerun_of"] == first["id"] and newest["params"] == {"word": "again"}


def test_tokens_and_an_unreachable_daemon(daemon: StartDaemon, workdir: Path) -> None:
    secret = run_toolrun("daemon", "token", "create", "ci").stdout.strip()
    server = daemon()
    refused = run_toolrun("--remote", server.url, "history", cwd=workdir)
    assert refused.returncode == 3 and "token" in refused.stderr
    wrong = run_toolrun("--remote", server.url, "--token", "trk_nope", "history", cwd=workdir)
    assert wrong.returncode == 3
    good = run_toolrun("--remote", server.url, "--token", secret, "history", "--json", cwd=workdir)
    assert good.returncode == 0 and json.loads(good.stdout) == []
    by_env = run_toolrun(
        "history",
        "--json",
        cwd=workdir,
        env={"TOOLRUN_REMOTE": server.url, "TOOLRUN_TOKEN": secret},
    )
    assert by_env.returncode == 0  # also through the fast path
    gone = run_toolrun("--remote", "http://127.0.0.1:9", "history", cwd=workdir)
    assert gone.returncode == 1 and "cannot reach the daemon" in gone.stderr
    bad_url = run_toolrun("--remote", "ftp://x", "history", cwd=workdir)
    assert bad_url.returncode == 2


def test_ctrl_c_cancels_the_remote_run_and_exits_130(remote: RemoteCli, tmp_path: Path) -> None:
    remote("exec", "probe", "echo", "warm-up")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "toolrun",
            "--remote",
            remote.server.url,
            "exec",
            "probe",
            "sleep",
            "60",
        ],
        cwd=tmp_path,
        env={**os.environ, "TOOLRUN_HOME": str(tmp_path / "elsewhere" / "home")},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    assert process.stdout.readline() == "sleeping\n"
    process.send_signal(signal.SIGINT)
    _out, err = process.communicate(timeout=30)
    assert process.returncode == 130, err
    assert "cancelling run" in err


def test_a_reader_that_goes_away_cancels_the_remote_run_quietly(
    remote: RemoteCli, tmp_path: Path
) -> None:
    process = subprocess.Popen(
        [
            *(sys.executable, "-m", "toolrun", "--remote", remote.server.url),
            *("exec", "probe", "drip", "600", "0.05"),
        ],
        cwd=tmp_path,
        env={**os.environ, "TOOLRUN_HOME": str(tmp_path / "elsewhere" / "home")},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert process.stdout is not None
    assert process.stdout.readline() == b"drip 0\n"
    process.stdout.close()
    _, err = process.communicate(timeout=30)
    assert process.returncode == 141, err
    assert b"Traceback" not in err and b"Broken pipe" not in err, err
    (run,) = json.loads(remote("history", "--json", "--limit", "1").stdout)
    deadline = time.monotonic() + 15
    while run["status"] not in ("cancelled", "succeeded", "failed"):
        assert time.monotonic() < deadline, run
        time.sleep(0.2)
        (run,) = json.loads(remote("history", "--json", "--limit", "1").stdout)
    assert run["status"] == "cancelled"


def _view_lines(app: RunApp) -> list[str]:
    from toolrun.tui.log_view import LogView

    view = app.query_one(LogView)
    return [view.line(i) for i in range(view.index.line_count)]


async def _until(condition: Callable[[], bool], pilot: Pilot[Any], seconds: float = 20) -> None:
    for _ in range(int(seconds / 0.05)):
        if condition():
            return
        await pilot.pause(0.05)
    pytest.fail("the view never got there")


def test_the_run_view_shows_a_daemons_run(remote: RemoteCli, tmp_path: Path) -> None:
    """The same view as a local run: steps, their tools and statuses, both streams, the code."""
    import asyncio

    from toolrun.cli.remote import RemoteRuns
    from toolrun.cli.remote_run import DaemonRun
    from toolrun.tui.run_app import RunApp
    from toolrun.tui.step_table import StepTable

    runs = RemoteRuns(remote.server.url, None)
    started = runs.start({"toolchain": "two", "params": {"word": "from afar"}})

    async def scenario() -> int | None:
        app = RunApp(DaemonRun(runs, started, tmp_path))
        async with app.run_test(size=(100, 30)) as pilot:
            await _until(lambda: app.final is not None, pilot)
            await _until(lambda: any("second: succeeded" in x for x in _view_lines(app)), pilot)
            lines = _view_lines(app)
            assert "first | from afar" in lines and "second ! careful" in lines
            steps = app.query_one(StepTable).steps
            assert [view.status for view in steps.values()] == ["succeeded", "succeeded"]
            assert steps["first"].tool == "probe 2.0.0"
            await pilot.press("q")
        return app.return_value

    assert asyncio.run(scenario()) == 0


def test_c_in_the_run_view_cancels_the_daemons_run(remote: RemoteCli, tmp_path: Path) -> None:
    import asyncio

    from toolrun.cli.remote import RemoteRuns
    from toolrun.cli.remote_run import DaemonRun
    from toolrun.tui.run_app import RunApp

    runs = RemoteRuns(remote.server.url, None)
    started = runs.start({"cmd": "probe", "args": ["sleep", "60"]})

    async def scenario() -> int | None:
        app = RunApp(DaemonRun(runs, started, tmp_path))
        async with app.run_test(size=(100, 30)) as pilot:
            await _until(lambda: "sleeping" in "".join(_view_lines(app)), pilot)
            await pilot.press("c", "y")
            await _until(lambda: app.final is not None, pilot)
            await pilot.press("q")
        return app.return_value

    assert asyncio.run(scenario()) == 130
    assert runs.require_run(started["id"]).status == "cancelled"


def test_a_run_the_daemon_cannot_follow_is_an_error_not_a_crash(
    remote: RemoteCli, tmp_path: Path
) -> None:
    """What goes wrong while following (here: a run the daemon does not know) reaches the CLI
    as its error, to be reported with its exit code; the view does not crash."""
    import asyncio

    from toolrun.cli.remote import RemoteRuns
    from toolrun.cli.remote_run import DaemonRun
    from toolrun.errors import NotFoundError
    from toolrun.tui.run_app import RunApp

    runs = RemoteRuns(remote.server.url, None)
    unknown = {"id": "20990101000000-1", "toolchain": "two", "steps": [{"id": "first"}]}

    async def scenario() -> RunApp:
        app = RunApp(DaemonRun(runs, unknown, tmp_path))
        async with app.run_test(size=(100, 30)) as pilot:
            await _until(lambda: app.error is not None, pilot)
        return app

    app = asyncio.run(scenario())
    assert isinstance(app.error, NotFoundError)
