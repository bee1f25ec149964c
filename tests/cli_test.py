"""The CLI as a user meets it: flags, messages, exit codes, config editing, completions."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO, Toolrun, WriteToolchain, write_tool

from toolrun import __version__
from toolrun.cli.completion import SHELLS


@pytest.mark.parametrize("flag", ["-v", "--version"])
def test_version(toolrun: Toolrun, flag: str) -> None:
    result = toolrun(flag)
    assert (result.returncode, result.stdout) == (0, f"toolrun {__version__}\n")


def test_help_lists_commands_and_exit_codes(toolrun: Toolrun) -> None:
    for flag in ("-h", "--help"):
        result = toolrun(flag)
        assert result.returncode == 0
        assert "tool" in result.stdout and "registry" in result.stdout
        assert "Exit codes" in result.stdout and "6 storage" in result.stdout


def test_usage_errors_exit_2_without_traceback(toolrun: Toolrun) -> None:
    for args in (["tool", "install", "uexp@@"], ["tool", "frobnicate"], ["config", "set", "x"]):
        result = toolrun(*args)
        assert result.returncode == 2, (args, result.stderr)
        assert "Traceback" not in result.stderr


def test_errors_are_one_clear_line_and_debug_shows_the_traceback(toolrun: Toolrun) -> None:
    result = toolrun("tool", "install", "nosuchtool")
    assert result.returncode == 4
    assert result.stderr.startswith("toolrun: error: unknown tool 'nosuchtool'")
    assert "Traceback" not in result.stderr
    debug = toolrun("tool", "install", "nosuchtool", env={"TOOLRUN_DEBUG": "1"})
    assert debug.returncode != 0 and "Traceback" in debug.stderr


def test_tool_commands_end_to_end(registry: Path, toolrun: Toolrun) -> None:
    assert toolrun("tool", "install", "hello==1.0.0", "greet").returncode == 0
    listing = json.loads(toolrun("tool", "list", "--json").stdout)
    assert [(t["name"], t["version"]) for t in listing] == [("greet", "0.1.0"), ("hello", "1.0.0")]

    available = json.loads(toolrun("tool", "list", "--available", "--json").stdout)
    assert {"name": "hello", "version": "1.1.0", "installed": False, "registry": "./registry"} in (
        available
    )

    versions = toolrun("tool", "versions", "hello")
    assert "hello 1.0.0  (installed)" in versions.stdout
    assert "hello 1.1.0  (latest)" in versions.stdout
    assert "2.0.0-rc.1" in versions.stdout

    which = json.loads(toolrun("tool", "which", "hello", "--json").stdout)
    assert which["version"] == "1.0.0"
    assert which["command"] == [sys.executable, str(Path(which["path"]) / "main.py")]

    upgrade = toolrun("tool", "upgrade", "hello")
    assert upgrade.returncode == 0 and "hello 1.0.0 -> 1.1.0" in upgrade.stdout
    assert "hello 1.1.0 is the newest" in toolrun("tool", "upgrade").stdout
    pre = toolrun("tool", "upgrade", "--pre", "hello")
    assert "hello 1.1.0 -> 2.0.0-rc.1" in pre.stdout

    ambiguous = toolrun("tool", "remove", "hello")
    assert ambiguous.returncode == 2 and "--all" in ambiguous.stderr
    assert toolrun("tool", "remove", "hello==1.0.0").returncode == 0
    assert toolrun("tool", "remove", "hello", "--all").returncode == 0
    gone = toolrun("tool", "remove", "hello==1.0.0")
    assert gone.returncode == 4


def test_unknown_tools_get_suggestions_and_missing_versions_list_what_exists(
    registry: Path, toolrun: Toolrun
) -> None:
    typo = toolrun("tool", "install", "helo")
    assert typo.returncode == 4 and "did you mean hello" in typo.stderr
    none = toolrun("tool", "install", "hello>=5")
    assert none.returncode == 4
    assert "known: 1.0.0, 1.1.0, 2.0.0-rc.1" in none.stderr
    which = toolrun("tool", "which", "hello")
    assert which.returncode == 4 and "toolrun tool install hello" in which.stderr


def test_install_reports_each_failure_and_installs_the_rest(
    registry: Path, toolrun: Toolrun
) -> None:
    result = toolrun("tool", "install", "nosuch", "greet")
    assert result.returncode == 4
    assert "installed greet 0.1.0" in result.stdout


def test_verify_names_changed_files(registry: Path, toolrun: Toolrun, toolrun_home: Path) -> None:
    assert toolrun("tool", "install", "greet").returncode == 0
    assert "greet 0.1.0: ok" in toolrun("tool", "verify").stdout
    (toolrun_home / "tools/greet/0.1.0/main.py").write_text("print('changed')")
    result = toolrun("tool", "verify")
    assert result.returncode == 5
    assert "greet 0.1.0: CHANGED" in result.stderr and "main.py: sha256 mismatch" in result.stderr


def test_config_edits_keep_comments(toolrun: Toolrun, toolrun_home: Path) -> None:
    config = toolrun_home / "config.toml"
    config.write_text("# my team's settings\noffline = false  # keep me\n")
    assert toolrun("config", "path").stdout.strip() == str(config)
    assert toolrun("config", "set", "registry_timeout", "2.5").returncode == 0
    assert toolrun("registry", "add", "share", str(toolrun_home)).returncode == 0
    assert toolrun("config", "set", "offline", "yes").returncode == 0
    text = config.read_text()
    assert "# my team's settings" in text and "# keep me" in text
    assert toolrun("config", "get", "registry_timeout").stdout == "2.5\n"
    assert toolrun("config", "get", "offline").stdout == "true\n"
    assert toolrun("config", "unset", "offline").returncode == 0
    assert toolrun("config", "get", "offline").stdout == "false\n"
    registries = json.loads(toolrun("registry", "list", "--json").stdout)
    assert registries == [{"name": "share", "location": str(toolrun_home), "kind": "folder"}]
    assert toolrun("registry", "remove", "share").returncode == 0
    assert "# my team's settings" in config.read_text()


def test_bad_config_values_and_keys(toolrun: Toolrun, toolrun_home: Path) -> None:
    bad_value = toolrun("config", "set", "registry_timeout", "soon")
    assert bad_value.returncode == 2 and "a duration such as 30s" in bad_value.stderr
    typo = toolrun("config", "get", "ofline")
    assert typo.returncode == 2 and "did you mean 'offline'" in typo.stderr
    (toolrun_home / "config.toml").write_text("registries = [\n")
    broken = toolrun("tool", "list", "--available")
    assert broken.returncode == 3 and "config.toml: not valid TOML" in broken.stderr
    duplicate = toolrun("registry", "add", "x", "http://127.0.0.1:1/")
    assert duplicate.returncode == 3
    (toolrun_home / "config.toml").write_bytes(b"offline = false\n# caf\xe9\n")
    latin1 = toolrun("tool", "list", "--available")
    assert latin1.returncode == 3 and "config.toml:2: not UTF-8 text (byte 0xe9)" in latin1.stderr


def test_a_hand_edit_of_the_same_size_is_read(toolrun: Toolrun, toolrun_home: Path) -> None:
    """The config's reading is kept in the cache by its content, not by its time or size."""
    config = toolrun_home / "config.toml"
    config.write_text("registry_timeout = 3\n")
    assert toolrun("config", "get", "registry_timeout").stdout == "3\n"
    assert (toolrun_home / "cache" / "config.json").is_file()
    stat = config.stat()
    config.write_text("registry_timeout = 4\n")
    os.utime(config, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert toolrun("config", "get", "registry_timeout").stdout == "4\n"


def test_registry_add_refuses_missing_folders(toolrun: Toolrun) -> None:
    result = toolrun("registry", "add", "nope", "/no/such/folder")
    assert (
        result.returncode == 2 and "neither an http(s) URL nor an existing folder" in result.stderr
    )


def test_the_fast_path_prints_what_typer_prints(
    registry: Path, toolrun: Toolrun, workdir: Path
) -> None:
    assert toolrun("tool", "install", "hello", "greet").returncode == 0
    assert toolrun("exec", "hello", "--", "x").returncode == 0
    for flags in ([], ["--json"], ["--status", "succeeded"], ["--limit=1", "--json"]):
        fast = toolrun("history", *flags)
        # A repeated option is not a form the fast path serves, so typer answers this one.
        slow = toolrun("history", *flags, "--page", "1", "--page", "1")
        assert fast.returncode == 0
        assert (fast.stdout, fast.returncode) == (slow.stdout, slow.returncode)
    for flags in ([], ["--json"], ["--available"], ["--json", "--available"]):
        fast = toolrun("tool", "list", *flags)
        # A repeated flag is not a form the fast path serves, so typer answers this one.
        slow = toolrun("tool", "list", *flags, *flags[:1])
        assert (fast.returncode, fast.stdout) == (slow.returncode, slow.stdout)


@pytest.mark.parametrize(
    "args",
    [["--version"], ["tool", "list"], ["tool", "list", "--json"], ["history", "--json"]],
    ids=" ".join,
)
def test_hot_commands_import_no_heavy_library(args: list[str], workdir: Path) -> None:
    probe = (
        "import sys, runpy\n"
        f"sys.argv = ['toolrun', *{args!r}]\n"
        "from toolrun.__main__ import main\n"
        "code = main()\n"
        "heavy = [m for m in ('textual', 'httpx', 'starlette', 'uvicorn', 'typer', 'rich')"
        " if m in sys.modules]\n"
        "print('HEAVY', heavy, file=sys.stderr)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=workdir, capture_output=True, text=True
    )
    assert "HEAVY []" in result.stderr, result.stderr


@pytest.mark.parametrize("shell", SHELLS)
def test_committed_completion_scripts_are_current(shell: str, toolrun: Toolrun) -> None:
    result = toolrun("completion", shell)
    assert result.returncode == 0
    suffix = {"bash": "bash", "zsh": "zsh", "fish": "fish", "powershell": "ps1"}[shell]
    committed = (REPO / "completions" / f"toolrun.{suffix}").read_text(encoding="utf-8")
    assert result.stdout == committed, "regenerate with: python scripts/update_completions.py"


def test_completion_answers_from_the_app(toolrun: Toolrun) -> None:
    result = toolrun(
        env={
            "_TOOLRUN_COMPLETE": "complete_bash",
            "COMP_WORDS": "toolrun tool in",
            "COMP_CWORD": "2",
        }
    )
    assert result.stdout.split() == ["install"]
    unknown = toolrun("completion", "tcsh")
    assert unknown.returncode == 2 and "choose one of bash" in unknown.stderr


def test_python_dash_m_and_console_script_agree(workdir: Path) -> None:
    script = Path(sys.executable).parent / "toolrun"
    assert script.exists(), "the console script is installed"
    result = subprocess.run([str(script), "--version"], capture_output=True, text=True, cwd=workdir)
    assert result.stdout == f"toolrun {__version__}\n"


def test_without_toolrun_home_the_platform_folders_are_used(tmp_path: Path, workdir: Path) -> None:
    import os

    env = {k: v for k, v in os.environ.items() if k != "TOOLRUN_HOME"}
    env.update(XDG_CONFIG_HOME=str(tmp_path / "xdg-config"), XDG_DATA_HOME=str(tmp_path / "xdg"))
    result = subprocess.run(
        [sys.executable, "-m", "toolrun", "config", "path"],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.stdout.strip() == str(tmp_path / "xdg-config" / "toolrun" / "config.toml")


def test_a_broken_manifest_names_file_and_field(registry: Path, toolrun: Toolrun) -> None:
    manifest = registry / "greet" / "0.1.0" / "tool.toml"
    manifest.write_text(manifest.read_text().replace('version = "0.1.0"', "version = 0.1"))
    result = toolrun("tool", "install", "greet")
    assert result.returncode == 3
    assert f"{manifest}: field 'version'" in result.stderr and "quote it" in result.stderr


def test_exec_and_the_cli_module_never_import_textual(registry: Path, workdir: Path) -> None:
    probe = (
        "import sys\n"
        "import toolrun.cli.app\n"
        "from toolrun.__main__ import main\n"
        "code = main(['exec', 'hello', '--', 'x'])\n"
        "print('TEXTUAL', 'textual' in sys.modules, 'CODE', code, file=sys.stderr)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=workdir, capture_output=True, text=True
    )
    assert "TEXTUAL False CODE 0" in result.stderr, result.stderr


def test_exec_ends_at_once_with_everything_written(
    registry: Path, workdir: Path, toolrun_home: Path, toolrun: Toolrun
) -> None:
    """exec skips Python's teardown: its output, its run and the store must be complete first."""
    write_tool(registry, "many", "1.0.0", script="for n in range(20000):\n    print('line', n)\n")
    result = toolrun("exec", "many")
    assert result.returncode == 0
    assert result.stdout.splitlines() == [f"line {n}" for n in range(20000)]
    (run,) = json.loads(toolrun("history", "--json").stdout)
    assert run["status"] == "succeeded"
    events = (toolrun_home / "runs" / run["id"] / "events.jsonl").read_text().splitlines()
    assert json.loads(events[-1])["kind"] == "run_finished"
    # Closed, not abandoned: an open store would leave its write-ahead log for the next
    # toolrun to read through and recover.
    assert not (toolrun_home / "history.db-wal").exists()


def test_exec_imports_none_of_the_slow_modules(
    registry: Path, workdir: Path, toolrun: Toolrun
) -> None:
    """Each costs milliseconds of exec's 100 ms budget (benchmarks/exec_overhead.py)."""
    assert toolrun("tool", "install", "hello").returncode == 0  # installing may use both
    # A config file too, read once already: its reading is kept, and tomllib needs typing.
    assert toolrun("config", "set", "kill_grace", "3").returncode == 0
    assert toolrun("exec", "hello").returncode == 0
    probe = (
        "import sys\n"
        "from toolrun.__main__ import main\n"
        "code = main(['exec', 'hello', '--', 'x'])\n"
        "slow = ('asyncio', 'typing', 'tomllib', 'dataclasses', 'inspect', 'hashlib', 'msgspec')\n"
        "loaded = [m for m in slow if m in sys.modules]\n"
        "print('LOADED', loaded, 'CODE', code, file=sys.stderr)\n"
    )
    # Not measured by coverage (which imports all of these itself), whatever runs the tests.
    unmeasured = {k: v for k, v in os.environ.items() if not k.startswith("COVERAGE_")}
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=workdir, capture_output=True, text=True, env=unmeasured
    )
    assert "LOADED [] CODE 0" in result.stderr, result.stderr


def test_exec_reencodes_a_gbk_tool_for_a_terminal_and_passes_bytes_into_a_pipe(
    registry: Path, toolrun: Toolrun, workdir: Path
) -> None:
    import os
    import pty
    import subprocess
    import sys

    from conftest import write_tool

    script = "import sys\nsys.stdout.buffer.write('转表 ok\\n'.encode('gbk'))\n"
    write_tool(registry, "gbk", "1.0.0", script=script, manifest_extra='encoding = "gbk"')
    piped = toolrun("exec", "gbk")
    assert piped.returncode == 0
    assert subprocess.run(
        [sys.executable, "-m", "toolrun", "exec", "gbk"], cwd=workdir, capture_output=True
    ).stdout == "转表 ok\n".encode("gbk")
    controller, terminal = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "toolrun", "exec", "gbk"],
        cwd=workdir,
        stdin=terminal,
        stdout=terminal,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "PYTHONIOENCODING": "utf-8"},
    )
    os.close(terminal)
    seen = b""
    while True:
        try:
            chunk = os.read(controller, 4096)
        except OSError:
            break
        if not chunk:
            break
        seen += chunk
    assert process.wait(30) == 0
    os.close(controller)
    assert "转表 ok".encode() in seen  # the terminal's UTF-8, not the tool's GBK


def test_what_a_user_reads_is_plain_words_not_python(
    registry: Path, toolchain: WriteToolchain, toolrun: Toolrun
) -> None:
    toolchain(
        "flags",
        "params:\n  push: {type: boolean, default: true}\n  n: 3\n"
        "toolchain:\n  - a: {cmd: hello, args: ['${{ params.push }}']}\n",
    )
    assert toolrun("run", "flags", "--plain").returncode == 0
    shown = toolrun("show", "last").stdout
    assert "push = true" in shown and "True" not in shown and "n = 3" in shown
    described = toolrun("toolchain", "show", "flags").stdout
    assert "= true" in described and "True" not in described
    beyond = toolrun("history", "--page", "99", "--plain")
    assert beyond.returncode == 0 and "no runs on page 99 (1 in all" in beyond.stdout


def test_the_output_cap_marks_every_step_whose_output_it_hides(
    probe: Path, toolchain: WriteToolchain, toolrun: Toolrun
) -> None:
    assert toolrun("config", "set", "output_cap", "1KB").returncode == 0
    toolchain(
        "chatty",
        "toolchain:\n  - a: {cmd: probe, args: [lines, '200']}\n"
        "  - b: {cmd: probe, args: [echo, from-b]}\n",
    )
    result = toolrun("run", "chatty", "--plain")
    assert "a: output truncated" in result.stdout
    assert "b: output not kept: the run's 1024 bytes of output are used up" in result.stdout


def test_run_takes_the_fast_path_with_its_flags_anywhere_and_typer_otherwise(
    toolrun: Toolrun, toolchain: WriteToolchain, probe: Path, workdir: Path
) -> None:
    """The forms scripts use skip typer; what only typer knows (--timeout, --help) still works."""
    toolchain(
        "one",
        "params:\n  who: {default: me}\n"
        "toolchain:\n  - a: {cmd: probe, args: [echo, '${{ params.who }}']}\n",
    )
    assert "you" in toolrun("run", "one", "who=you", "--plain").stdout
    assert "me" in toolrun("run", "--plain", "one").stdout
    assert toolrun("run", "--plain", "--timeout", "5s", "one").returncode == 0  # typer's
    assert "Usage" in toolrun("run", "--help").stdout
    bad = toolrun("run", "one", "oops", "--plain")
    assert bad.returncode == 2 and "expected key=value, got 'oops'" in bad.stderr
    code = (
        "import sys; from toolrun.cli.fast import try_fast_path;"
        "code = try_fast_path(['run', '--plain', 'one']); print('typer' in sys.modules, code)"
    )
    shown = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=workdir, check=False
    )
    assert shown.stdout.strip().splitlines()[-1] == "False 0", shown.stderr
