"""Reading what a step left in $TOOLRUN_OUTPUT: real files, and the things a hostile or careless
tool may have put there instead (nothing, a link, a folder, a FIFO, too much, junk)."""

from __future__ import annotations

import os
import threading
from pathlib import Path

from toolrun.executors.outputs import OUTPUTS_LIMIT, read_outputs


def test_key_value_lines_are_read_and_everything_else_is_skipped(tmp_path: Path) -> None:
    path = tmp_path / "out"
    path.write_bytes(
        b"version=1.2.3\n"
        b"  spaced  =kept as written \n"
        b"url=https://x/?a=b&c=d\n"
        b"# comment=not an output\n"
        b"   #indented=comment too\n"
        b"=no key\n"
        b"   =blank key\n"
        b"no separator\n"
        b"\n"
        b"empty=\n"
        b"bad=\xff\xfe\r\n"
        b"version=2.0.0"  # the last word wins, even without a final newline
    )
    outputs, problem = read_outputs(path)
    assert problem is None
    assert outputs == {
        "version": "2.0.0",
        "spaced": "kept as written ",
        "url": "https://x/?a=b&c=d",
        "empty": "",
        "bad": "\ufffd\ufffd",
    }


def test_a_step_that_wrote_nothing_has_no_outputs_and_no_problem(tmp_path: Path) -> None:
    assert read_outputs(tmp_path / "never-made") == ({}, None)
    (tmp_path / "empty").write_bytes(b"")
    assert read_outputs(tmp_path / "empty") == ({}, None)


def test_a_link_is_not_followed_wherever_it_points(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("password=hunter2\n")
    link = tmp_path / "out"
    link.symlink_to(secret)
    assert read_outputs(link) == ({}, f"{link}: not a file, ignored")
    dangling = tmp_path / "dangling"
    dangling.symlink_to(tmp_path / "nowhere")
    assert read_outputs(dangling) == ({}, f"{dangling}: not a file, ignored")


def test_a_folder_or_a_fifo_is_ignored_without_blocking(tmp_path: Path) -> None:
    folder = tmp_path / "dir"
    folder.mkdir()
    assert read_outputs(folder) == ({}, f"{folder}: not a file, ignored")
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    answer: list[tuple[dict[str, str], str | None]] = []
    reader = threading.Thread(target=lambda: answer.append(read_outputs(fifo)), daemon=True)
    reader.start()
    reader.join(5)
    assert not reader.is_alive(), "reading a FIFO with no writer blocked"
    assert answer == [({}, f"{fifo}: not a file, ignored")]
    before = len(os.listdir("/proc/self/fd"))
    for _ in range(20):
        read_outputs(fifo)
    assert len(os.listdir("/proc/self/fd")) == before  # each one closed again


def test_only_whole_lines_of_the_first_mebibyte_are_read(tmp_path: Path) -> None:
    path = tmp_path / "out"
    line = b"k%06d=" + b"v" * 91 + b"\n"  # 100 bytes
    count = OUTPUTS_LIMIT // 100 + 10  # past the limit, with a line across it
    path.write_bytes(b"".join(line.replace(b"%06d", b"%06d" % i) for i in range(count)))
    outputs, problem = read_outputs(path)
    assert problem == f"{path}: only the lines in its first 1024 KiB were read"
    whole = OUTPUTS_LIMIT // 100  # lines of 100 bytes that end inside the limit
    assert len(outputs) == whole
    assert f"k{whole - 1:06d}" in outputs and f"k{whole:06d}" not in outputs
    assert all(value == "v" * 91 for value in outputs.values())
    exact = tmp_path / "exact"
    exact.write_bytes(b"a=" + b"x" * (OUTPUTS_LIMIT - 3) + b"\n")  # exactly the limit
    outputs, problem = read_outputs(exact)
    assert problem is None and len(outputs["a"]) == OUTPUTS_LIMIT - 3
