"""``toolrun init``: a team starting from nothing gets a toolchain that runs at once."""

from __future__ import annotations

from pathlib import Path

from conftest import Toolrun


def test_init_then_run_the_example_in_that_folder(toolrun: Toolrun, workdir: Path) -> None:
    made = toolrun("init")
    assert made.returncode == 0, made.stderr
    assert (
        str(Path("toolchains", "hello.yaml")) in made.stdout
        and "next: toolrun run hello" in made.stdout
    )
    run = toolrun("run", "hello", "--plain")
    assert run.returncode == 0, run.stderr
    assert "greet | Hello, world!" in run.stdout
    assert "shout | HELLO, WORLD!" in run.stdout  # the first step's output, passed on
    again = toolrun("run", "hello", "who=team", "--plain")
    assert again.returncode == 0 and "HELLO, TEAM!" in again.stdout
    assert toolrun("toolchain", "validate", "hello").returncode == 0
    assert toolrun("tool", "verify").returncode == 0
    # The hashes init wrote are those the project's own rehash would write.
    rehashed = toolrun("registry", "rehash", "registry")
    assert rehashed.returncode == 0 and "unchanged" in rehashed.stdout
    assert "updated" not in rehashed.stdout


def test_init_takes_a_path_or_dir(toolrun: Toolrun, workdir: Path) -> None:
    assert toolrun("init", "team").returncode == 0
    assert toolrun("init", "--dir", "other").returncode == 0
    for folder in ("team", "other"):
        assert (workdir / folder / "toolchains" / "hello.yaml").is_file()
        run = toolrun("run", "hello", "--plain", cwd=workdir / folder)
        assert run.returncode == 0, run.stderr
    both = toolrun("init", "a", "--dir", "b")
    assert both.returncode == 2 and "not both" in both.stderr


def test_init_never_overwrites_and_names_what_is_there(toolrun: Toolrun, workdir: Path) -> None:
    mine = workdir / "toolchains" / "hello.yaml"
    mine.parent.mkdir()
    mine.write_text("# my own\n", encoding="utf-8")
    refused = toolrun("init")
    assert refused.returncode == 2
    assert "toolrun: error: nothing was written" in refused.stderr
    assert str(mine) in refused.stderr
    assert mine.read_text(encoding="utf-8") == "# my own\n"
    assert not (workdir / "registry").exists()  # all or nothing
    assert "Exit codes: 0 written; 2" in toolrun("init", "--help").stdout


def test_a_file_given_as_the_folder_is_refused(tmp_path: Path, toolrun: Toolrun) -> None:
    target = tmp_path / "notes.txt"
    target.write_text("mine\n", encoding="utf-8")
    result = toolrun("init", str(target))
    assert result.returncode == 2 and "is a file, not a folder" in result.stderr
    assert target.read_text(encoding="utf-8") == "mine\n"
