"""``toolrun tool search WORD`` over installed tools, a folder registry and a real HTTP
registry on 127.0.0.1; and ``tool uninstall``, remove's other name."""

from __future__ import annotations

import json
import socket
from pathlib import Path

from conftest import Serve, Toolrun, write_tool


def test_search_a_folder_registry_by_name_and_description(toolrun: Toolrun, registry: Path) -> None:
    write_tool(registry, "exporter", "0.3.0")
    (registry / "exporter" / "0.3.0" / "tool.toml").write_text(
        (registry / "exporter" / "0.3.0" / "tool.toml")
        .read_text(encoding="utf-8")
        .replace('description = "test tool exporter"', 'description = "Writes Unity TABLES"'),
        encoding="utf-8",
    )
    assert toolrun("registry", "rehash", str(registry)).returncode == 0
    assert toolrun("tool", "install", "greet").returncode == 0

    by_name = toolrun("tool", "search", "GRE")
    assert by_name.returncode == 0, by_name.stderr
    header, row = by_name.stdout.splitlines()
    assert header.split()[:4] == ["NAME", "VERSION", "INSTALLED", "REGISTRY"]
    assert row.split()[:4] == ["greet", "0.1.0", "0.1.0", "./registry"]

    by_description = json.loads(toolrun("tool", "search", "unity tables", "--json").stdout)
    assert by_description == [
        {
            "name": "exporter",
            "version": "0.3.0",
            "description": "Writes Unity TABLES",
            "installed": [],
            "registry": "./registry",
        }
    ]
    newest = json.loads(toolrun("tool", "search", "hello", "--json").stdout)
    assert [(m["name"], m["version"]) for m in newest] == [("hello", "2.0.0-rc.1")]

    nothing = toolrun("tool", "search", "zebra")
    assert (
        nothing.returncode == 0 and "no tool's name or description holds 'zebra'" in nothing.stdout
    )
    assert json.loads(toolrun("tool", "search", "zebra", "--json").stdout) == []
    assert toolrun("tool", "search", " ").returncode == 2


def test_search_an_http_registry_its_index_descriptions_and_offline(
    toolrun: Toolrun, registry: Path, tmp_path: Path, serve: Serve, workdir: Path
) -> None:
    assert toolrun("registry", "build", str(registry), str(tmp_path / "tree")).returncode == 0
    assert toolrun("registry", "add", "team", serve(tmp_path / "tree")).returncode == 0
    registry.rename(workdir / "source")  # only the HTTP registry from now on
    assert toolrun("tool", "install", "hello@1.0").returncode == 0

    found = json.loads(toolrun("tool", "search", "test tool", "--json").stdout)
    assert {(m["name"], m["registry"]) for m in found} == {("greet", "team"), ("hello", "team")}
    [hello] = [m for m in found if m["name"] == "hello"]
    assert hello["installed"] == ["1.0.0"] and hello["description"] == "test tool hello"

    offline = json.loads(toolrun("tool", "search", "test tool", "--json", "--offline").stdout)
    assert offline == [
        {
            "name": "hello",
            "version": "1.0.0",
            "description": "test tool hello",
            "installed": ["1.0.0"],
            "registry": None,
        }
    ]
    table = toolrun("tool", "search", "hello", "--offline").stdout
    assert "(installed only)" in table


def test_an_unreachable_registry_is_a_warning_and_installed_tools_still_show(
    toolrun: Toolrun, registry: Path
) -> None:
    assert toolrun("tool", "install", "greet").returncode == 0
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    gone = f"http://127.0.0.1:{port}/"
    assert toolrun("registry", "add", "away", gone).returncode == 0
    result = toolrun("tool", "search", "greet")
    assert result.returncode == 0
    assert "greet" in result.stdout
    assert "toolrun: warning: registry 'away'" in result.stderr and str(port) in result.stderr


def test_uninstall_is_remove(toolrun: Toolrun, registry: Path) -> None:
    assert toolrun("tool", "install", "hello==1.0.0", "hello==1.1.0").returncode == 0
    ambiguous = toolrun("tool", "uninstall", "hello")
    assert ambiguous.returncode == 2 and "--all" in ambiguous.stderr
    one = toolrun("tool", "uninstall", "hello==1.0.0")
    assert one.returncode == 0 and "removed hello 1.0.0" in one.stdout
    assert toolrun("tool", "uninstall", "hello", "--all").stdout == "removed hello 1.1.0\n"
    missing = toolrun("tool", "uninstall", "hello==1.0.0")
    assert missing.returncode == 4
    assert "uninstall" in toolrun("tool", "--help").stdout
