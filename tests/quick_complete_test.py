"""How a completion request is read and answered, in this process (tests/completion_test.py
asks the real `toolrun` as each shell's script does)."""

from __future__ import annotations

from pathlib import Path

import pytest

from toolrun.cli.quick_complete import slot_for, try_quick_complete, words_of


@pytest.mark.parametrize(
    ("shell", "environ", "expected"),
    [
        ("bash", {"COMP_WORDS": "toolrun run ex", "COMP_CWORD": "2"}, (["run"], "ex")),
        ("bash", {"COMP_WORDS": "toolrun run", "COMP_CWORD": "2"}, (["run"], "")),
        ("bash", {"COMP_WORDS": "toolrun 'open", "COMP_CWORD": "1"}, None),  # shlex refuses
        ("bash", {}, None),
        ("zsh", {"_TYPER_COMPLETE_ARGS": "toolrun exec ue"}, (["exec"], "ue")),
        ("fish", {"_TYPER_COMPLETE_ARGS": "toolrun exec "}, (["exec"], "")),
        ("powershell", {"_TYPER_COMPLETE_ARGS": "toolrun show 2026",
                        "_TYPER_COMPLETE_WORD_TO_COMPLETE": "2026"}, (["show"], "2026")),
        ("powershell", {"_TYPER_COMPLETE_ARGS": "toolrun show "}, (["show"], "")),
    ],
)  # fmt: skip
def test_each_shells_words_are_read_as_its_script_sends_them(
    shell: str, environ: dict[str, str], expected: tuple[list[str], str] | None
) -> None:
    assert words_of(shell, environ) == expected


def test_only_a_names_place_is_answered_here() -> None:
    assert slot_for(["run"]) == (("run",), "toolchain")
    assert slot_for(["tool", "install", "a", "b"]) == (("tool", "install"), "tool")
    assert slot_for(["tool", "which"]) == (("tool", "which"), "installed")
    assert slot_for(["run", "job"]) is None  # a param's place: typer's
    assert slot_for(["run", "--plain"]) is None
    assert slot_for(["daemon"]) is None
    assert slot_for([]) is None


def test_requests_that_are_not_for_a_name_go_to_typer(toolrun_home: Path) -> None:
    bash = {"COMP_WORDS": "toolrun run --pl", "COMP_CWORD": "2"}
    assert try_quick_complete({**bash, "_TOOLRUN_COMPLETE": "complete_tcsh"}) is None
    assert try_quick_complete({**bash, "_TOOLRUN_COMPLETE": "complete_bash"}) is None
    odd = {"_TOOLRUN_COMPLETE": "complete_bash", "COMP_WORDS": "toolrun 'x", "COMP_CWORD": "1"}
    assert try_quick_complete(odd) is None


def test_fish_asks_first_whether_there_is_anything_to_offer(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (workdir / "toolchains").mkdir()
    (workdir / "toolchains" / "export-job.yaml").write_text("toolchain: []\n", encoding="utf-8")
    fish = {"_TOOLRUN_COMPLETE": "complete_fish", "_TYPER_COMPLETE_FISH_ACTION": "is-args"}
    assert try_quick_complete({**fish, "_TYPER_COMPLETE_ARGS": "toolrun run ex"}) == 0
    assert try_quick_complete({**fish, "_TYPER_COMPLETE_ARGS": "toolrun run zz"}) == 1
    assert capsys.readouterr().out == ""


def test_a_damaged_history_offers_no_run_ids_and_says_nothing(
    workdir: Path, toolrun_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (toolrun_home / "history.db").write_bytes(b"no database" * 100)
    bash = {"_TOOLRUN_COMPLETE": "complete_bash", "COMP_WORDS": "toolrun show ", "COMP_CWORD": "2"}
    assert try_quick_complete(bash) == 0
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""
