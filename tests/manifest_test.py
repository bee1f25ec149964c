from __future__ import annotations

from pathlib import Path

import pytest

from toolrun.errors import ConfigError
from toolrun.tools.manifest import load_manifest


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "tool.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_a_full_manifest_loads_with_platform_overrides(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
name = "uexp"
version = "0.1.0"
description = "exporter"
command = ["{python}", "{tool_dir}/uexp.py"]
encoding = "gbk"
[env]
MODE = "fast"
[platform.windows]
command = ["{tool_dir}\\\\uexp.exe"]
env = {MODE = "win"}
[files]
"uexp.py" = "%s"
"""
        % ("a" * 64),
    )
    manifest = load_manifest(path)
    assert manifest.encoding == "gbk"
    linux = manifest.command_for("linux", tool_dir=Path("/t"), python="/py")
    assert linux == ["/py", "/t/uexp.py"]
    assert manifest.command_for("windows", tool_dir=Path("/t"), python="/py")[0].endswith(
        "uexp.exe"
    )
    assert manifest.env_for("windows") == {"MODE": "win"}
    assert manifest.env_for("linux") == {"MODE": "fast"}


def test_every_problem_is_named_with_file_and_field(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
name = "bad name"
version = 0.1
command = "uexp --all"
encoding = "no-such-codec"
colour = "red"
[platform.beos]
command = ["x"]
[files]
"../escape.py" = "zz"
""",
    )
    with pytest.raises(ConfigError) as info:
        load_manifest(path)
    message = str(info.value)
    for field in ("'name'", "'version'", "'command'", "'encoding'", "'colour'", "platform.beos"):
        assert f"{path}: field {field if field.startswith(chr(39)) else repr(field)}" in message
    assert "quote it" in message
    assert "files.../escape.py" in message


def test_invalid_toml_names_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "name = [unclosed\n")
    with pytest.raises(ConfigError, match=r"tool\.toml: not valid TOML"):
        load_manifest(path)


def test_system_tools_ship_no_files(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        'name = "ping"\nversion = "1.0.0"\nkind = "system"\ncommand = ["ping"]\n'
        '[files]\n"x" = "%s"\n' % ("b" * 64),
    )
    with pytest.raises(ConfigError, match="ships no files"):
        load_manifest(path)
