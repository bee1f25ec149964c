"""Publishing (tools/publish.py): hashing a folder registry's files and building the static HTTP
tree an HTTP registry serves; what it refuses, it refuses before writing anything wrong."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest
from conftest import write_tool

from toolrun.errors import ConfigError, IntegrityError, UsageError
from toolrun.tools.archives import sha256_file
from toolrun.tools.manifest import load_manifest
from toolrun.tools.publish import build_registry, rehash, tool_files


def test_rehash_writes_the_files_present_and_keeps_the_authors_comments(tmp_path: Path) -> None:
    folder = write_tool(tmp_path / "reg", "uexp", "0.1.0", hash_files=False)
    manifest = folder / "tool.toml"
    manifest.write_text("# exports tables\n" + manifest.read_text())
    (folder / "lib").mkdir()
    (folder / "lib" / "util.py").write_text("X = 1\n")
    (folder / "__pycache__").mkdir()
    (folder / "__pycache__" / "main.cpython-311.pyc").write_bytes(b"generated")
    assert tool_files(folder) == ["lib/util.py", "main.py"]
    assert rehash(folder) is True
    assert rehash(folder) is False  # nothing changed since
    assert manifest.read_text().startswith("# exports tables\n")
    files = load_manifest(manifest).files
    assert files == {
        "lib/util.py": sha256_file(folder / "lib" / "util.py"),
        "main.py": sha256_file(folder / "main.py"),
    }


def test_a_symbolic_link_in_a_tool_folder_is_refused(tmp_path: Path) -> None:
    folder = write_tool(tmp_path / "reg", "uexp", "0.1.0")
    (folder / "passwd").symlink_to("/etc/passwd")
    with pytest.raises(IntegrityError, match="may not hold symbolic links"):
        tool_files(folder)


def test_a_built_tree_holds_an_index_and_a_zip_per_version(tmp_path: Path) -> None:
    source = tmp_path / "reg"
    for version in ("0.1.0", "0.2.0"):
        write_tool(source, "uexp", version)
    write_tool(source, "game-meta", "1.0.0")
    built = build_registry(source, tmp_path / "out")
    assert sorted((b.name, b.version) for b in built) == [
        ("game-meta", "1.0.0"),
        ("uexp", "0.1.0"),
        ("uexp", "0.2.0"),
    ]
    index = json.loads((tmp_path / "out" / "index.json").read_text())
    entry = index["tools"]["uexp"]["versions"]["0.2.0"]
    archive = tmp_path / "out" / entry["archive"]
    assert entry["sha256"] == sha256_file(archive) and entry["size"] == archive.stat().st_size
    with zipfile.ZipFile(archive) as zipped:
        assert sorted(zipped.namelist()) == ["main.py", "tool.toml"]
        assert entry["unpacked_size"] == sum(info.file_size for info in zipped.infolist())
    assert not list((tmp_path / "out").rglob("*.tmp"))
    build_registry(source, tmp_path / "out")  # its own index may be written again


def test_a_file_changed_after_hashing_stops_the_build_with_the_fix(tmp_path: Path) -> None:
    source = tmp_path / "reg"
    folder = write_tool(source, "uexp", "0.1.0")
    (folder / "main.py").write_text("print('changed')\n")
    with pytest.raises(IntegrityError) as caught:
        build_registry(source, tmp_path / "out")
    assert f"toolrun registry rehash {source}" in caught.value.message
    assert not (tmp_path / "out" / "index.json").exists()


@pytest.mark.parametrize(
    ("out", "message"),
    [
        ("", "name the output folder"),
        ("reg/inside", "outside the source registry"),
        ("afile", "exists and is not a folder"),
        ("foreign", "exists and is not a registry index"),
    ],
)
def test_outputs_that_would_do_harm_are_refused(tmp_path: Path, out: str, message: str) -> None:
    source = tmp_path / "reg"
    write_tool(source, "uexp", "0.1.0")
    (tmp_path / "afile").write_text("mine")
    (tmp_path / "foreign").mkdir()
    (tmp_path / "foreign" / "index.json").write_text('{"my": "own file"}')
    with pytest.raises(UsageError, match=message):
        build_registry(source, Path(out) if not out else tmp_path / out)
    assert (tmp_path / "foreign" / "index.json").read_text() == '{"my": "own file"}'


def test_an_empty_source_is_no_registry(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="no tools found"):
        build_registry(tmp_path / "empty", tmp_path / "out")
    with pytest.raises(UsageError, match="is not a folder"):
        build_registry(tmp_path / "missing", tmp_path / "out")
