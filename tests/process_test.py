from __future__ import annotations

from toolrun.process import MAX_LINE, LineSplitter, exit_description


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


def test_an_argument_with_a_nul_byte_is_a_start_error_not_a_crash(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import asyncio
    import os
    import sys

    import pytest

    from toolrun.process import StartError, StepProcess

    process = StepProcess(
        [sys.executable, "-c", "pass", "a\0b"],
        cwd=tmp_path,
        env=dict(os.environ),
        encoding="utf-8",
        on_lines=lambda stream, lines: None,
    )
    with pytest.raises(StartError, match="cannot start"):
        asyncio.run(process.start())
