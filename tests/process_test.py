from __future__ import annotations

import os
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest

from toolrun.executors.processes import (
    MAX_LINE,
    LineSplitter,
    ThreadedStepProcess,
    exit_description,
)


def test_lines_split_across_reads_and_multibyte_characters() -> None:
    splitter = LineSplitter("utf-8")
    data = "héllo\r\nwörld\n半".encode()
    lines = []
    for i in range(len(data)):
        lines.extend(splitter.feed(data[i : i + 1]))
    assert lines == ["héllo", "wörld"]
    assert splitter.finish() == ["半"]


def test_bad_bytes_are_replaced_and_gbk_decodes() -> None:
    assert LineSplitter("utf-8").feed(b"a\xffb\n") == ["a\ufffdb"]
    assert LineSplitter("gbk").feed("转表\n".encode("gbk")) == ["转表"]


def test_enormous_lines_are_cut_without_growing() -> None:
    splitter = LineSplitter("utf-8")
    pieces = splitter.feed(b"x" * (MAX_LINE * 3 + 5))
    assert [len(p) for p in pieces] == [MAX_LINE] * 3
    assert splitter.finish() == ["x" * 5]


def test_exit_descriptions() -> None:
    assert exit_description(3) == "exit 3"
    assert exit_description(-9) == "killed by SIGKILL"


def test_an_argument_with_a_nul_byte_is_a_start_error_not_a_crash(tmp_path: Path) -> None:
    import asyncio
    import os
    import sys

    import pytest

    from toolrun.executors.processes import StartError, StepProcess

    process = StepProcess(
        [sys.executable, "-c", "pass", "a\0b"],
        cwd=tmp_path,
        env=dict(os.environ),
        encoding="utf-8",
        on_lines=lambda stream, lines: None,
    )
    with pytest.raises(StartError, match="null byte"):
        asyncio.run(process.start())


PROBE = Path(__file__).parent / "tools" / "probe.py"


def pumped(
    *args: str, use_threads: bool, stop_after: float | None = None
) -> tuple[dict[str, list[str]], int, float]:
    """The probe run through ThreadedStepProcess as threaded_driver does: lines, exit code, time."""
    got: dict[str, list[str]] = {"stdout": [], "stderr": []}
    raw: list[bytes] = []
    process = ThreadedStepProcess(
        [sys.executable, str(PROBE), *args],
        cwd=PROBE.parent,
        env=dict(os.environ),
        encoding="utf-8",
        on_lines=lambda stream, lines: got[stream].extend(lines),
        on_raw=lambda stream, data: raw.append(data),
        orphan_grace=0.5,
        kill_grace=1.0,
        use_threads=use_threads,
    )
    started = time.monotonic()
    process.start()
    while not process.done:
        process.pump(0.05)
        if stop_after is not None and time.monotonic() - started > stop_after:
            process.terminate(grace=1.0)
            stop_after = None
    code = process.finish()
    assert b"".join(raw).decode("utf-8", "replace").count("\n") >= len(got["stdout"])
    return got, code, time.monotonic() - started


READERS = pytest.mark.parametrize("use_threads", [False, True], ids=["selector", "threads"])


@READERS
def test_both_readers_deliver_every_line_and_the_exit_code(use_threads: bool) -> None:
    got, code, _ = pumped("lines", "100000", use_threads=use_threads)
    assert code == 0
    assert len(got["stdout"]) == 100000 and got["stdout"][-1] == "line 99999 of the probe's output"
    got, code, _ = pumped("stderr", "to err", use_threads=use_threads)
    assert got == {"stdout": [], "stderr": ["to err"]} and code == 0
    got, code, _ = pumped("binary", use_threads=use_threads)
    assert got["stdout"][1] == "second" and code == 0


@READERS
def test_both_readers_see_signals_early_closes_and_orphans(
    use_threads: bool, tmp_path: Path
) -> None:
    _, code, _ = pumped("signal", use_threads=use_threads)
    assert code == -9
    got, code, took = pumped("close-stdout", use_threads=use_threads)
    assert got["stdout"] == ["closing"] and code == 0 and took >= 0.5
    pid_file = tmp_path / "orphan"
    got, code, took = pumped("orphan", str(pid_file), use_threads=use_threads)
    assert code == 0 and "parent done" in got["stdout"] and took < 10
    pid = int(pid_file.read_text())
    deadline = time.monotonic() + 5
    while psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
        assert time.monotonic() < deadline, "the orphan outlived its step"
        time.sleep(0.05)


@READERS
def test_both_readers_end_a_process_told_to_stop(use_threads: bool) -> None:
    got, _, took = pumped("sleep", "30", use_threads=use_threads, stop_after=0.5)
    assert got["stdout"] == ["sleeping"] and took < 10  # never "woke"


def test_the_selector_reader_starts_no_thread() -> None:
    # Threads other tests left may end meanwhile: only new ones count.
    before = set(threading.enumerate())
    new: list[set[threading.Thread]] = []
    process = ThreadedStepProcess(
        [sys.executable, str(PROBE), "echo", "x"],
        cwd=PROBE.parent,
        env=dict(os.environ),
        encoding="utf-8",
        # (The cgroup box moves this process back out of the step's cgroup from a thread of
        # its own, which a loaded machine may not have ended yet: not a reader.)
        on_lines=lambda stream, lines: new.append(
            {t for t in threading.enumerate() if t.name != "cgroup"} - before
        ),
        use_threads=False,
    )
    process.start()
    while not process.done:
        process.pump(0.05)
    assert process.finish() == 0 and new == [set()]


HAMMER = """
import asyncio, os, sys, threading
import uvloop
from toolrun.executors import processes as process

lost = []
done = threading.Event()

def hold_descriptors():
    # Another thread opening files all the time, as the cgroup leaver and the resolver do.
    while not done.is_set():
        fd = os.open(os.devnull, os.O_RDONLY)
        try:
            for _ in range(50):
                os.fstat(fd)
            os.close(fd)
        except OSError as exc:
            lost.append(exc)

async def main():
    loop = asyncio.get_running_loop()
    for _ in range(3000):
        r, w = os.pipe()
        reader = await process._reader(loop, open(r, "rb", buffering=0))
        os.write(w, b"x")
        os.close(w)
        while await reader.read(100):
            pass
        await asyncio.sleep(0)

thread = threading.Thread(target=hold_descriptors)
thread.start()
try:
    uvloop.run(main())
finally:
    done.set()
    thread.join()
print(len(lost))
"""


@pytest.mark.skipif(sys.platform == "win32", reason="uvloop does not run on Windows")
def test_pipes_read_under_uvloop_close_their_descriptor_once() -> None:
    """uvloop closes a pipe's descriptor and then its file object closes the number again: by
    then another thread may hold that number, and loses it (under the daemon's load, runs
    stayed `running` for ever and requests failed with EBADF; unfixed, this also hangs)."""
    import subprocess

    done = subprocess.run(
        [sys.executable, "-c", HAMMER], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["0"]
