"""``toolrun doctor`` as a user meets it: a fresh folder in order, then each kind of trouble
(an unreachable HTTP registry, a damaged history, a config that is not TOML, containment
chosen by hand, a daemon set up to be reached without tokens) found and explained."""

from __future__ import annotations

import json
import socket
from pathlib import Path

from conftest import Serve, Toolrun


def lines_of(output: str) -> dict[str, str]:
    """Each check's line, by its name (the status first, then the name)."""
    found = {}
    for line in output.splitlines():
        status, _, rest = line.partition(" ")
        if status in ("ok", "warning", "problem"):
            name = rest.strip().split("  ")[0]
            found[name] = line
    return found


def test_a_folder_after_init_is_in_order(toolrun: Toolrun, toolrun_home: Path) -> None:
    assert toolrun("init").returncode == 0
    assert toolrun("run", "hello", "--plain").returncode == 0
    result = toolrun("doctor", env={"TOOLRUN_CONTAINMENT": "group"})
    assert result.returncode == 0, result.stdout + result.stderr
    found = lines_of(result.stdout)
    assert set(found) >= {
        "data folder", "config", "history", "tools", "toolchains", "registry ./registry",
        "containment", "daemon", "automation", "cluster",
    }  # fmt: skip
    assert all(line.startswith("ok") for line in found.values()), result.stdout
    assert "intact, 1 run(s)" in found["history"]
    assert (
        "registry" in found["registry ./registry"] and "1 tool(s)" in found["registry ./registry"]
    )
    assert (
        "process group" in found["containment"]
        and "TOOLRUN_CONTAINMENT=group" in found["containment"]
    )
    assert result.stdout.rstrip().endswith("everything is in order")

    data = json.loads(toolrun("doctor", "--json").stdout)
    assert data["status"] in ("ok", "warning")  # containment may warn on this machine
    assert {"name", "status", "detail", "fix"} <= set(data["checks"][0])
    assert "Exit codes: 0 nothing wrong" in toolrun("doctor", "--help").stdout


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_an_unreachable_http_registry_is_a_problem_with_its_url(
    toolrun: Toolrun, registry: Path, tmp_path: Path, serve: Serve
) -> None:
    built = toolrun("registry", "build", str(registry), str(tmp_path / "tree"))
    assert built.returncode == 0, built.stderr
    assert toolrun("registry", "add", "team", serve(tmp_path / "tree")).returncode == 0
    gone = f"http://127.0.0.1:{closed_port()}/tree/"
    assert toolrun("registry", "add", "away", gone).returncode == 0
    (tmp_path / "unmounted").mkdir()
    assert toolrun("registry", "add", "share", str(tmp_path / "unmounted")).returncode == 0
    (tmp_path / "unmounted").rmdir()  # the share went away since

    result = toolrun("doctor")
    assert result.returncode == 1
    found = lines_of(result.stdout)
    assert found["registry team"].startswith("ok") and "2 tool(s)" in found["registry team"]
    away = found["registry away"]
    assert away.startswith("problem") and gone in away and "unreachable" in away
    fix = result.stdout.splitlines()[result.stdout.splitlines().index(away) + 1]
    assert "fix:" in fix and "--offline" in fix
    share = found["registry share"]
    assert share.startswith("problem") and "unmounted is not a folder" in share
    assert "2 problems" in result.stdout

    data = json.loads(toolrun("doctor", "--json").stdout)
    assert data["status"] == "problem"
    [entry] = [c for c in data["checks"] if c["name"] == "registry away"]
    assert entry["status"] == "problem" and gone in entry["detail"] and entry["fix"]

    offline = toolrun("doctor", "--offline")
    assert "not asked (--offline)" in lines_of(offline.stdout)["registry away"]
    assert not lines_of(offline.stdout)["registry away"].startswith("problem")


def test_a_damaged_history_names_history_repair(toolrun: Toolrun, toolrun_home: Path) -> None:
    assert toolrun("init").returncode == 0
    for _ in range(3):
        assert toolrun("run", "hello", "--plain").returncode == 0
    database = toolrun_home / "history.db"
    data = bytearray(database.read_bytes())
    page = 4096
    assert len(data) > 4 * page
    data[2 * page : 4 * page] = b"\x5a" * (2 * page)  # two pages of an index or table
    database.write_bytes(bytes(data))

    result = toolrun("doctor")
    assert result.returncode == 1
    history = lines_of(result.stdout)["history"]
    assert history.startswith("problem") and "damaged" in history
    assert "toolrun history repair" in result.stdout
    assert database.read_bytes() == bytes(data)  # the doctor only looked

    assert toolrun("history", "repair").returncode == 0
    assert lines_of(toolrun("doctor").stdout)["history"].startswith("ok")

    for leftover in toolrun_home.glob("history.db*"):
        leftover.unlink()  # the index lost, the run folders kept
    lost = toolrun("doctor")
    assert lost.returncode == 1 and "missing beside run folders" in lost.stdout
    assert "toolrun history repair" in lost.stdout


def test_config_that_is_not_toml_is_placed_by_line_and_column(
    toolrun: Toolrun, toolrun_home: Path
) -> None:
    config = toolrun_home / "config.toml"
    config.write_text("registry_timeout = 5\noffline = = true\n", encoding="utf-8")
    result = toolrun("doctor")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    line = lines_of(result.stdout)["config"]
    assert line.startswith("problem") and f"{config}:2:" in line and "not valid TOML" in line
    assert "not checked: config.toml does not load" in lines_of(result.stdout)["daemon"]

    config.write_text('regsitry_timeout = "5s"\n', encoding="utf-8")
    unknown = lines_of(toolrun("doctor").stdout)["config"]
    assert "unknown key 'regsitry_timeout'" in unknown and "registry_timeout" in unknown


def test_containment_and_the_daemons_settings(toolrun: Toolrun, toolrun_home: Path) -> None:
    odd = lines_of(toolrun("doctor", env={"TOOLRUN_CONTAINMENT": "jail"}).stdout)
    assert odd["containment"].startswith("warning") and "'jail'" in odd["containment"]

    (toolrun_home / "config.toml").write_text(
        'allow_hosts = ["build01.example.com"]\n', encoding="utf-8"
    )
    result = toolrun("doctor")
    daemon = lines_of(result.stdout)["daemon"]
    assert daemon.startswith("warning") and "build01.example.com" in daemon
    assert "toolrun daemon token create" in result.stdout
    assert toolrun("daemon", "token", "create", "ci").returncode == 0
    assert lines_of(toolrun("doctor").stdout)["daemon"].startswith("ok")

    with (toolrun_home / "config.toml").open("a", encoding="utf-8") as file:
        file.write('\n[[hooks]]\nname = "push"\ntoolchain = "hello"\ncolour = "red"\n')
    broken = toolrun("doctor")
    assert broken.returncode == 1
    automation = lines_of(broken.stdout)["automation"]
    assert automation.startswith("problem") and "hooks[0]" in automation


def test_a_data_folder_that_is_a_file_and_broken_files_in_it_are_problems(
    toolrun: Toolrun, tmp_path: Path, toolrun_home: Path
) -> None:
    a_file = tmp_path / "not-a-folder"
    a_file.write_text("", encoding="utf-8")
    result = toolrun("doctor", "--json", env={"TOOLRUN_HOME": str(a_file)})
    assert result.returncode == 1
    shown = json.loads(result.stdout)
    [data] = [c for c in shown["checks"] if c["name"] == "data folder"]
    assert data["status"] == "problem" and "is not a folder" in data["detail"]

    made = toolrun("doctor", env={"TOOLRUN_HOME": str(tmp_path / "new" / "home")})
    assert "(made on first use)" in lines_of(made.stdout)["data folder"]

    assert toolrun("init").returncode == 0
    assert toolrun("run", "hello", "--plain").returncode == 0
    (toolrun_home / "history.db").write_bytes(b"this is no database at all" * 200)
    for leftover in toolrun_home.glob("history.db-*"):
        leftover.unlink()
    history = lines_of(toolrun("doctor").stdout)["history"]
    assert history.startswith("problem")
    receipt = next((toolrun_home / "tools").rglob(".toolrun-receipt.json"))
    receipt.write_text("{ not json", encoding="utf-8")
    tools = lines_of(toolrun("doctor").stdout)["tools"]
    assert tools.startswith("problem")


def test_a_broken_toolchain_and_the_daemons_other_settings_are_shown(
    toolrun: Toolrun, toolrun_home: Path, workdir: Path
) -> None:
    assert toolrun("init").returncode == 0
    (workdir / "toolchains" / "broken.yaml").write_text("toolchain: [", encoding="utf-8")
    (workdir / "toolchains" / "worse.yaml").write_text("nothing: here\n", encoding="utf-8")
    (toolrun_home / "config.toml").write_text(
        'accept_env = ["GAME_*"]\npublic_url = "https://toolrun.example.com"\n',
        encoding="utf-8",
    )
    result = toolrun("doctor", env={"TOOLRUN_CONTAINMENT": "group"})
    assert result.returncode == 1
    found = lines_of(result.stdout)
    assert found["toolchains"].startswith("problem") and "(and 1 more)" in found["toolchains"]
    assert "accept_env GAME_*" in found["daemon"] and "public_url https://" in found["daemon"]
    assert found["containment"].startswith("ok") and "process group" in found["containment"]
