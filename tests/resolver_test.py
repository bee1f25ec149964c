"""From a spec to an installed tool (tools/resolver.py), against real folder registries and an
HTTP registry that cannot be reached (a closed port on 127.0.0.1)."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from conftest import write_tool

from toolrun.errors import NotFoundError, RegistryUnavailable
from toolrun.tools.installer import Installer
from toolrun.tools.registry import FolderRegistry, HttpRegistry
from toolrun.tools.resolver import ToolResolver, WouldInstall
from toolrun.tools.versions import parse_spec


def folder(tmp_path: Path, name: str, tools: dict[str, list[str]]) -> FolderRegistry:
    root = tmp_path / name
    for tool, versions in tools.items():
        for version in versions:
            write_tool(root, tool, version)
    return FolderRegistry(name, root)


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_the_best_match_is_installed_once_and_then_used_as_installed(tmp_path: Path) -> None:
    registry = folder(tmp_path, "team", {"uexp": ["0.1.0", "0.2.0", "1.0.0-rc.1"]})
    resolver = ToolResolver(Installer(tmp_path / "tools"), [registry])
    tool = resolver.resolve(parse_spec("uexp@0"))
    assert tool.version == "0.2.0" and (tool.path / "main.py").is_file()
    assert [t.version for t in resolver.newly_installed] == ["0.2.0"]
    again = resolver.resolve_with_result(parse_spec("uexp==0.2.0"))
    assert again.already_installed and len(resolver.newly_installed) == 1
    assert resolver.resolve(parse_spec("uexp"), pre=True).version == "1.0.0-rc.1"


def test_the_first_registry_that_has_a_version_wins(tmp_path: Path) -> None:
    first = folder(tmp_path, "first", {"uexp": ["0.1.0"]})
    second = folder(tmp_path, "second", {"uexp": ["0.1.0", "0.3.0"]})
    resolver = ToolResolver(Installer(tmp_path / "tools"), [first, second])
    offered = resolver.available(["uexp"]).versions["uexp"]
    assert offered["0.1.0"] is first and offered["0.3.0"] is second
    assert resolver.resolve(parse_spec("uexp")).version == "0.3.0"


def test_without_install_only_installed_versions_count(tmp_path: Path) -> None:
    registry = folder(tmp_path, "team", {"uexp": ["0.1.0"]})
    resolver = ToolResolver(Installer(tmp_path / "tools"), [registry])
    with pytest.raises(NotFoundError) as caught:
        resolver.resolve(parse_spec("uexp"), install=False)
    assert caught.value.message == "uexp is not installed"
    assert caught.value.hint == "install it with: toolrun tool install uexp"
    with pytest.raises(WouldInstall, match=r"uexp 0\.1\.0"):
        resolver.resolve(parse_spec("uexp"), may_install=False)
    assert not (tmp_path / "tools" / "uexp").exists()


def test_no_match_names_what_is_known_and_suggests_a_name(tmp_path: Path) -> None:
    registry = folder(tmp_path, "team", {"uexp": ["0.1.0", "2.0.0-beta.1"], "game-meta": ["1.0.0"]})
    resolver = ToolResolver(Installer(tmp_path / "tools"), [registry])
    with pytest.raises(NotFoundError) as caught:
        resolver.resolve(parse_spec("uexp@2"))
    assert "(known: 0.1.0, 2.0.0-beta.1)" in caught.value.message
    assert caught.value.hint is not None and "--pre" in caught.value.hint
    with pytest.raises(NotFoundError) as caught:
        resolver.resolve(parse_spec("game-mata"))
    assert caught.value.message == "unknown tool 'game-mata' (did you mean game-meta?)"


def test_an_unreachable_registry_is_a_warning_and_then_the_reason(tmp_path: Path) -> None:
    here = folder(tmp_path, "team", {"uexp": ["0.1.0"]})
    away = HttpRegistry("away", f"http://127.0.0.1:{closed_port()}/", timeout=2)
    resolver = ToolResolver(Installer(tmp_path / "tools"), [away, here])
    assert resolver.resolve(parse_spec("uexp")).version == "0.1.0"  # the folder still answers
    assert resolver.warnings and "away" in resolver.warnings[0]
    with pytest.raises(RegistryUnavailable) as caught:
        resolver.resolve(parse_spec("game-meta"))
    assert "a registry could not be asked" in caught.value.message


def test_offline_asks_only_folders(tmp_path: Path) -> None:
    here = folder(tmp_path, "team", {"uexp": ["0.1.0"]})
    away = HttpRegistry("away", f"http://127.0.0.1:{closed_port()}/", timeout=2)
    resolver = ToolResolver(Installer(tmp_path / "tools"), [away, here], offline=True)
    assert resolver.answers_locally and not resolver.refresh()
    assert resolver.resolve(parse_spec("uexp")).version == "0.1.0"
    assert resolver.warnings == []
    assert not ToolResolver(Installer(tmp_path / "t2"), [away, here]).answers_locally
