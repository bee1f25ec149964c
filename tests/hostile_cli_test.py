"""Bad input from a review that threw hundreds of odd inputs at the CLI: each case once ended
in a traceback, a hang or a silent loss. Now: a message naming the problem, a distinct exit
code, and nothing lost."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from conftest import Toolrun, WriteToolchain, run_toolrun, write_tool

LONG = "a" * 300


def check(result: subprocess.CompletedProcess[str], code: int, *words: str) -> None:
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode == code, (result.returncode, result.stderr)
    for word in words:
        assert word in result.stderr, (word, result.stderr)


def test_arguments_and_values_out_of_any_range(
    registry: Path, toolrun: Toolrun, workdir: Path
) -> None:
    check(toolrun("registry", "add", "r", "http://[::1"), 2, "not a URL")
    check(toolrun("registry", "add", "r", "http://127.0.0.1:9/ x"), 2, "space")
    check(toolrun("registry", "add", "r", "http://"), 2, "host")
    check(toolrun("registry", "add", "r", ""), 2, "neither")
    check(toolrun("--remote", "http://[::1", "history"), 2, "--remote")
    check(toolrun("exec", LONG, "--", "x"), 2, "too long")
    check(toolrun("run", LONG), 4, "no toolchain named")
    check(toolrun("registry", "add", "y", f"/tmp/{LONG}"), 6, "File name too long")
    check(toolrun("history", "--limit", "9" * 25), 2, "--limit")
    check(toolrun("history", "prune", "--keep", "9" * 30), 2, "--keep")
    check(toolrun("history", "prune", "--max-size", "1e400GB"), 2, "--max-size")
    check(toolrun("history", "prune", "--max-size", "nanGB"), 2, "--max-size")
    check(toolrun("config", "set", "output_cap", "1e400GB"), 2, "output_cap")
    check(toolrun("config", "set", "kill_grace", "1e309"), 2, "must be a duration")
    check(toolrun("exec", "hello", "--timeout", "nan", "--"), 2, "a duration such as")
    # An endless kill_grace would have made a timed-out step hang for ever.
    assert (
        "kill_grace" not in (workdir.parent / "home" / "config.toml").read_text(encoding="utf-8")
        if (workdir.parent / "home" / "config.toml").exists()
        else True
    )


def test_toolchains_with_values_no_run_can_use(
    registry: Path, toolchain: WriteToolchain, toolrun: Toolrun
) -> None:
    toolchain("merge", "base: &b {cmd: hello}\ntoolchain:\n  - a:\n      <<: *b\n")
    toolchain("forever", "toolchain:\n  - a: {cmd: hello, timeout: .inf}\n")
    toolchain("loop", "toolchain:\n  - a: {cmd: hello, retries: 99999999999999999999}\n")
    toolchain("nan", "params:\n  f: .nan\ntoolchain:\n  - a: {cmd: hello}\n")
    toolchain(
        "number", "params:\n  f: {type: number, default: 1}\ntoolchain:\n  - a: {cmd: hello}\n"
    )
    check(toolrun("toolchain", "validate", "merge"), 3, "merge.yaml:4")
    check(toolrun("toolchain", "validate", "forever"), 3, "finite")
    check(toolrun("toolchain", "validate", "loop"), 3, "up to 1000")
    check(toolrun("toolchain", "validate", "nan"), 3, "finite number")
    check(toolrun("run", "number", "f=nan", "--plain"), 2, "must be a number")
    # Every problem of every file is reported, not only the first.
    result = toolrun("toolchain", "validate", "merge", "nope", "forever", "number")
    check(result, 3, "merge.yaml", "no toolchain named 'nope'", "forever.yaml")
    assert "number.yaml: ok" in result.stdout


def test_damaged_files_are_named_and_the_rest_still_works(
    registry: Path, toolrun: Toolrun, toolrun_home: Path
) -> None:
    assert toolrun("tool", "install", "hello==1.0.0", "hello==1.1.0").returncode == 0
    receipt = toolrun_home / "tools" / "hello" / "1.0.0" / ".toolrun-receipt.json"
    receipt.write_text("[1, 2]")
    listed = toolrun("tool", "list")
    check(listed, 0, "damaged receipt", "tool remove hello@1.0.0")
    assert "1.1.0" in listed.stdout
    check(toolrun("exec", "hello==1.0.0"), 6, "damaged receipt")
    check(toolrun("tool", "verify"), 5, "damaged receipt")
    assert toolrun("tool", "remove", "hello@1.0.0").returncode == 0

    done = toolrun("exec", "hello==1.1.0", "--", "x")
    assert done.returncode == 0
    run_id = json.loads(toolrun("history", "--json").stdout)[0]["id"]
    events = toolrun_home / "runs" / run_id / "events.jsonl"
    with events.open("ab") as file:
        file.write(b'\0\0\0\0\n[1, 2]\n{"seq": "a", "t": 1, "kind": "x"}\n')
    logs = toolrun("logs", run_id)
    check(logs, 0, "skipped 3 damaged line(s)")
    assert "hello 1.1.0 x" in logs.stdout
    events.unlink()
    check(toolrun("logs", run_id), 6, "its log is missing")


def test_broken_config_files_are_refused_before_any_edit(
    toolrun: Toolrun, toolrun_home: Path
) -> None:
    config = toolrun_home / "config.toml"
    for text, words in (
        (b'description = "\xff"\n', ("config.toml:1", "not UTF-8")),
        (b'registries = "x"\n', ("'registries' must be an array of tables",)),
        (b'[[registries]]\nname = "r"\nlocation = "http://[::1"\n', ("registries[0]",)),
    ):
        config.write_bytes(text)
        check(toolrun("registry", "add", "x", str(toolrun_home)), 3, *words)
        assert config.read_bytes() == text  # never overwritten
    config.write_bytes(b"tokens = 5\n")
    check(toolrun("daemon", "token", "create", "bob"), 3, "'tokens'")


def test_registry_build_never_writes_over_what_it_did_not_write(
    registry: Path, toolrun: Toolrun, workdir: Path
) -> None:
    (workdir / "index.json").write_text('{"mine": 1}')
    check(toolrun("registry", "build", str(registry), ""), 2, "name the output folder")
    (workdir / "elsewhere").mkdir()
    (workdir / "elsewhere" / "index.json").write_text('{"mine": 1}')
    check(toolrun("registry", "build", str(registry), "elsewhere"), 2, "not a registry index")
    (workdir / "afile").write_text("x")
    check(toolrun("registry", "build", str(registry), "afile"), 2, "not a folder")
    assert (workdir / "index.json").read_text() == '{"mine": 1}'
    assert toolrun("registry", "build", str(registry), "out").returncode == 0
    assert toolrun("registry", "build", str(registry), "out").returncode == 0  # its own: again


def test_many_failures_are_each_reported_and_offline_keeps_folders(
    registry: Path, toolrun: Toolrun, tmp_path: Path
) -> None:
    result = toolrun("tool", "install", "nosuch", "hello@9", "greet")
    check(result, 4, "unknown tool 'nosuch'", "no version of hello matches '9'")
    assert "installed greet 0.1.0" in result.stdout
    # --offline skips HTTP registries only: ./registry still answers.
    offline = toolrun("exec", "--offline", "hello==1.0.0", "--", "y")
    assert offline.returncode == 0 and offline.stdout == "hello 1.0.0 y\n", offline.stderr
    home_file = tmp_path / "home-is-a-file"
    home_file.write_text("x")
    check(run_toolrun("tool", "list", env={"TOOLRUN_HOME": str(home_file)}), 6, "Not a directory")


# A tool that fills the log well past the limit below, then stays: the run must end it.
FLOOD_AND_STAY = """import os, sys, time
with open(sys.argv[1], "w") as file:
    file.write(str(os.getpid()))
for n in range(60000):
    print("line", n, "of a flood that fills the disk")
sys.stdout.flush()
time.sleep(600)
"""


def _full_disk() -> None:
    # The file size limit stands in for a full disk: writes past it fail with EFBIG as
    # they would with ENOSPC, in the same places. SIGXFSZ would end toolrun instead.
    import resource
    import signal

    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (1_000_000, 1_000_000))


# exec; a run of one step (threaded_driver); a run of two (async_driver, the event loop's driver).
@pytest.mark.parametrize("command", ["exec", "run", "run-two"])
def test_a_full_disk_stops_the_run_says_so_and_leaves_no_tool(
    registry: Path, workdir: Path, toolrun_home: Path, tmp_path: Path, command: str
) -> None:
    import os
    import subprocess
    import sys
    import time

    import psutil

    write_tool(registry, "flood", "1.0.0", script=FLOOD_AND_STAY)
    assert run_toolrun("tool", "install", "flood", cwd=workdir).returncode == 0
    pid_file = tmp_path / "pid"
    args = ["exec", "flood", "--"] if command == "exec" else ["run", "--plain", "flood"]
    if command == "exec":
        args.append(str(pid_file))
    else:
        (workdir / "toolchains").mkdir()
        (workdir / "toolchains" / "flood.yaml").write_text(
            f"toolchain:\n  - flood: {{cmd: flood, args: [{json.dumps(str(pid_file))}]}}\n"
            + ("  - later: {cmd: hello}\n" if command == "run-two" else "")
        )
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "toolrun", *args],
        cwd=workdir,
        env={**os.environ, "TOOLRUN_HOME": str(toolrun_home)},
        preexec_fn=_full_disk,
        capture_output=True,
        text=True,
        errors="replace",
        timeout=60,
    )
    check(result, 6, "events.jsonl", "File too large", "history prune")
    assert time.monotonic() - started < 30
    pid = int(pid_file.read_text())
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    (run,) = json.loads(run_toolrun("history", "--json", cwd=workdir).stdout)
    assert run["status"] == "failed" and "File too large" in run["error"]
    # What was written before the disk filled is intact and readable.
    shown = run_toolrun("logs", run["id"], cwd=workdir)
    assert shown.returncode == 0 and "line 0 of a flood" in shown.stdout


def test_a_registry_url_with_a_password_is_refused_without_showing_it(
    toolrun: Toolrun, toolrun_home: Path
) -> None:
    # urllib would take "user:secret@host" for a host name, and every message naming the
    # registry would carry the password.
    result = toolrun("registry", "add", "team", "https://ci:s3cret@registry.example/tools/")
    check(result, 2, "user name or password", "ci:***@registry.example")
    assert "s3cret" not in result.stderr
    (toolrun_home / "config.toml").write_text(
        '[[registries]]\nname = "team"\nlocation = "https://ci:s3cret@registry.example/"\n'
    )
    result = toolrun("tool", "list", "--available")
    check(result, 3, "user name or password", "registry remove team")
    assert "s3cret" not in result.stderr


def test_a_listing_whose_reader_goes_away_ends_quietly(
    registry: Path, workdir: Path, toolrun: Toolrun
) -> None:
    """`toolrun logs ID | head -1`: exit 141 as a pipeline's writer, not "Broken pipe"."""
    import subprocess
    import sys

    write_tool(registry, "many", "1.0.0", script="for n in range(50000):\n    print('line', n)\n")
    assert toolrun("exec", "many").returncode == 0
    (run,) = json.loads(toolrun("history", "--json").stdout)
    for args in (["logs", run["id"]], ["logs", run["id"], "--format", "json"]):
        process = subprocess.Popen(
            [sys.executable, "-m", "toolrun", *args],
            cwd=workdir,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        assert process.stdout is not None and process.stdout.readline()
        process.stdout.close()
        _, err = process.communicate(timeout=60)
        assert process.returncode == 141 and err == b"", (args, process.returncode, err)
