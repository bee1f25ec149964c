"""Damaged input never crashes toolrun and never hides a loss: a damaged or emptied history, a
log cut short, a full disk, bytes that are not text, a YAML bomb, a killed install, a tool
whose files were changed."""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import Toolrun, WriteToolchain, run_toolrun


def runs_of(toolrun: Toolrun) -> list[dict[str, Any]]:
    listed = toolrun("history", "--json", "--limit", "100")
    assert listed.returncode == 0, listed.stderr
    return list(json.loads(listed.stdout))


def shown(toolrun: Toolrun, run_id: str) -> dict[str, Any]:
    return dict(json.loads(toolrun("show", run_id, "--json").stdout))


@pytest.fixture
def history(registry: Path, toolchain: WriteToolchain, toolrun: Toolrun) -> list[dict[str, Any]]:
    """A few runs of several kinds, as `show --json` gives them."""
    toolchain(
        "pair",
        "params:\n  who: {type: string, default: world}\n"
        "toolchain:\n  - a: {cmd: hello, args: ['${{ params.who }}']}\n"
        "  - b: {cmd: greet, needs: [a]}\n",
    )
    assert toolrun("exec", "hello@1.0", "--", "x").returncode == 0
    assert toolrun("run", "pair", "who=team", "--plain").returncode == 0
    assert toolrun("exec", "greet").returncode == 0
    return [shown(toolrun, str(run["id"])) for run in runs_of(toolrun)]


KEPT = ("id", "toolchain", "status", "origin", "requester", "params", "exit_code", "rerun_of")
STEP_KEPT = ("id", "tool", "spec", "version", "sha256", "status", "attempts", "exit_code")


def same_history(before: list[dict[str, Any]], after: list[dict[str, Any]]) -> None:
    assert [r["id"] for r in after] == [r["id"] for r in before]
    for old, new in zip(before, after, strict=True):
        assert {k: new[k] for k in KEPT} == {k: old[k] for k in KEPT}
        assert abs(float(new["created_at"]) - float(old["created_at"])) < 1
        old_steps = [{k: s[k] for k in STEP_KEPT} for s in old["steps"]]
        new_steps = [{k: s[k] for k in STEP_KEPT} for s in new["steps"]]
        assert new_steps == old_steps


# -- the history's index ------------------------------------------------------------------------


@pytest.mark.parametrize("damage", ["header", "pages"])
def test_a_damaged_index_is_named_and_repaired_from_the_run_folders(
    history: list[dict[str, Any]], toolrun: Toolrun, toolrun_home: Path, damage: str
) -> None:
    db = toolrun_home / "history.db"
    data = bytearray(db.read_bytes())
    if damage == "header":
        data[:100] = b"\xee" * 100
    else:
        data[4096 : len(data) - 1] = b"\xee" * (len(data) - 4097)
    db.write_bytes(bytes(data))
    for side in ("history.db-wal", "history.db-shm"):
        (toolrun_home / side).unlink(missing_ok=True)
    run_id = str(history[0]["id"])
    for args in (["history"], ["show", run_id], ["logs", run_id], ["exec", "greet"]):
        result = toolrun(*args)
        assert result.returncode == 6, (args, result.stderr)
        assert "Traceback" not in result.stderr
        assert str(db) in result.stderr and "history repair" in result.stderr
    repaired = toolrun("history", "repair")
    assert repaired.returncode == 0, repaired.stderr
    assert "rebuilt the index of 3 run(s): 3 from their logs" in repaired.stdout
    (aside,) = [p for p in toolrun_home.glob("history.db.damaged-*") if p.name[-4:-3] != "-"]
    assert aside.read_bytes() == bytes(data)  # kept as it was found
    same_history(history, [shown(toolrun, str(run["id"])) for run in runs_of(toolrun)])
    assert toolrun("exec", "greet").returncode == 0  # and the store is writable again


def test_an_emptied_index_says_so_and_names_the_fix(
    history: list[dict[str, Any]], toolrun: Toolrun, toolrun_home: Path
) -> None:
    (toolrun_home / "history.db").write_bytes(b"")
    for side in ("history.db-wal", "history.db-shm"):
        (toolrun_home / side).unlink(missing_ok=True)
    listed = toolrun("history")
    assert "no runs yet" in listed.stdout
    assert "holds run folders" in listed.stderr and "history repair" in listed.stderr
    missing = toolrun("show", str(history[0]["id"]))
    assert missing.returncode == 4 and "has a folder but is not in" in missing.stderr
    assert toolrun("history", "repair").returncode == 0
    same_history(history, [shown(toolrun, str(run["id"])) for run in runs_of(toolrun)])


def test_a_run_the_index_lost_is_never_overwritten_by_a_new_one(
    registry: Path, toolrun: Toolrun, toolrun_home: Path
) -> None:
    assert toolrun("exec", "greet").returncode == 0
    (first,) = runs_of(toolrun)
    (toolrun_home / "history.db").unlink()
    for side in ("history.db-wal", "history.db-shm"):
        (toolrun_home / side).unlink(missing_ok=True)
    before = (toolrun_home / "runs" / str(first["id"]) / "events.jsonl").read_bytes()
    assert toolrun("exec", "greet").returncode == 0
    # The lost run's folder, of the same second perhaps, is left alone.
    assert (toolrun_home / "runs" / str(first["id"]) / "events.jsonl").read_bytes() == before


# -- logs ---------------------------------------------------------------------------------------


def test_a_log_cut_short_is_read_with_a_warning_naming_the_byte(
    registry: Path, toolrun: Toolrun, toolrun_home: Path
) -> None:
    assert toolrun("exec", "hello", "--", "one").returncode == 0
    (run,) = runs_of(toolrun)
    log = toolrun_home / "runs" / str(run["id"]) / "events.jsonl"
    data = log.read_bytes()
    cut = data.rindex(b"\n", 0, len(data) - 1) + 1 + 10  # ten bytes into the last line
    log.write_bytes(data[:cut])
    result = toolrun("logs", str(run["id"]))
    assert result.returncode == 0
    assert "hello 1.1.0 one" in result.stdout
    assert f"ends early: its last line is cut short at byte {cut - 10}" in result.stderr


# -- a full disk --------------------------------------------------------------------------------


def _no_room() -> None:
    # A file size limit of 0 stands in for a disk with no room: no file may grow.
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))


def test_the_history_reads_on_a_full_disk(
    history: list[dict[str, Any]], workdir: Path, toolrun_home: Path
) -> None:
    for side in ("history.db-wal", "history.db-shm"):
        assert not (toolrun_home / side).exists()  # closed cleanly: a reader must make them
    run_id = str(history[0]["id"])
    for args in (["history", "--json"], ["show", run_id, "--json"], ["logs", run_id]):
        result = subprocess.run(
            [sys.executable, "-m", "toolrun", *args],
            cwd=workdir,
            env={**os.environ, "TOOLRUN_HOME": str(toolrun_home)},
            preexec_fn=_no_room,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, (args, result.stderr)
        assert run_id in result.stdout or "hello" in result.stdout


# -- bytes that are not text --------------------------------------------------------------------


def test_an_argument_that_is_not_utf8_is_refused_and_leaves_nothing(
    registry: Path, toolrun: Toolrun, toolrun_home: Path, workdir: Path
) -> None:
    for args in (
        [b"exec", b"hello", b"--", b"\xff"],
        [b"run", b"pair", b"who=\xffx"],
    ):
        result = subprocess.run(
            [sys.executable.encode(), b"-m", b"toolrun", *args],
            cwd=workdir,
            capture_output=True,
            timeout=60,
        )
        assert result.returncode == 2
        assert b"not UTF-8 text (byte 0xff" in result.stderr and b"Traceback" not in result.stderr
    assert not (toolrun_home / "runs").exists() or not list((toolrun_home / "runs").iterdir())
    assert toolrun("exec", "hello", "--", "fine").returncode == 0


# -- a YAML bomb --------------------------------------------------------------------------------


def test_a_yaml_bomb_is_refused_at_once(
    registry: Path, toolchain: WriteToolchain, toolrun: Toolrun
) -> None:
    levels = ["x0: &x0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for i in range(1, 10):
        levels.append(f"x{i}: &x{i} [" + ", ".join([f"*x{i - 1}"] * 9) + "]")
    body = "".join(f"      {line}\n" for line in levels)
    toolchain("bomb", f"params:\n  p:\n    default:\n{body}toolchain:\n  - a: {{cmd: hello}}\n")
    started = time.monotonic()
    result = toolrun("toolchain", "validate", "bomb")
    assert time.monotonic() - started < 10
    assert result.returncode == 3
    assert "bomb.yaml:" in result.stderr and "aliases expand to more than" in result.stderr
    toolchain("fine", "base: &b {cmd: hello}\ntoolchain:\n  - a: {cmd: hello}\n")
    # Anchors that repeat a few lines stay allowed (this file fails only for its unknown key).
    assert "aliases" not in toolrun("toolchain", "validate", "fine").stderr


# -- installs ------------------------------------------------------------------------------------


def test_an_install_cleans_what_killed_installs_left(
    registry: Path, toolrun: Toolrun, toolrun_home: Path
) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    staging = toolrun_home / "tools" / ".staging"
    staging.mkdir(parents=True)
    leftovers = [
        staging / f"other@2.0.0-{dead.pid}-0123abcd",
        staging / f"other@2.0.0-{dead.pid}-0123abcd.other-2.0.0.zip",
    ]
    leftovers[0].mkdir()
    (leftovers[0] / "big.bin").write_bytes(b"x" * 100_000)
    leftovers[1].write_bytes(b"partial download")
    alive = staging / f"more@1.0.0-{os.getpid()}-0123abcd"  # an install still going
    alive.mkdir()
    assert toolrun("tool", "install", "greet").returncode == 0
    assert not any(path.exists() for path in leftovers)
    assert alive.exists()


def test_a_tool_changed_after_install_is_refused_until_reinstalled(
    registry: Path, toolrun: Toolrun, toolrun_home: Path
) -> None:
    assert toolrun("tool", "install", "hello==1.0.0").returncode == 0
    folder = toolrun_home / "tools" / "hello" / "1.0.0"
    main = folder / "main.py"
    original = main.read_bytes()
    main.write_bytes(original.replace(b"print(", b"print('evil', "))
    result = toolrun("exec", "hello==1.0.0")
    assert result.returncode == 5
    assert f"{main}: was changed after it was installed" in result.stderr
    assert "tool remove hello@1.0.0" in result.stderr
    main.write_bytes(original)  # back as it was, but with a new modification time
    assert toolrun("exec", "hello==1.0.0").returncode == 0  # re-hashed, found intact
    receipt = json.loads((folder / ".toolrun-receipt.json").read_text())
    assert receipt["stats"]["main.py"][1] == main.stat().st_mtime_ns  # and remembered
    (folder / "sitecustomize.py").write_text("import os\n")
    added = toolrun("exec", "hello==1.0.0")
    assert added.returncode == 5 and "sitecustomize.py: was added" in added.stderr
    (folder / "sitecustomize.py").unlink()
    (folder / "__pycache__").mkdir()
    (folder / "__pycache__" / "main.cpython-311.pyc").write_bytes(b"planted")
    planted = toolrun("exec", "hello==1.0.0")
    assert (
        planted.returncode == 5 and "__pycache__/main.cpython-311.pyc: was added" in planted.stderr
    )
    import shutil

    shutil.rmtree(folder / "__pycache__")
    assert run_toolrun("exec", "hello==1.0.0", cwd=toolrun_home.parent / "work").returncode == 0
