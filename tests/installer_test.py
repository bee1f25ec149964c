from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import write_tool

from toolrun.errors import IntegrityError, StorageError
from toolrun.tools.installer import Installer
from toolrun.tools.registry import FolderRegistry, HttpRegistry
from toolrun.tools.resolver import ToolResolver, WouldInstall
from toolrun.tools.versions import parse_spec


def resolver_for(home: Path, registry: Path) -> ToolResolver:
    return ToolResolver(Installer(home / "tools"), [FolderRegistry("test", registry)])


def visible_versions(home: Path, name: str) -> list[str]:
    return Installer(home / "tools").versions(name)


def test_install_resolves_latest_and_installs_side_by_side(
    registry: Path, toolrun_home: Path
) -> None:
    resolver = resolver_for(toolrun_home, registry)
    first = resolver.resolve(parse_spec("hello@1.0"))
    latest = resolver.resolve(parse_spec("hello"))
    assert (first.version, latest.version) == ("1.0.0", "1.1.0")
    assert visible_versions(toolrun_home, "hello") == ["1.0.0", "1.1.0"]
    assert (latest.path / "main.py").read_bytes() == (registry / "hello/1.1.0/main.py").read_bytes()
    again = resolver.resolve_with_result(parse_spec("hello==1.1.0"))
    assert again.already_installed


def test_without_install_only_installed_versions_count(registry: Path, toolrun_home: Path) -> None:
    resolver = resolver_for(toolrun_home, registry)
    resolver.resolve(parse_spec("hello@1.0"))
    assert resolver.resolve(parse_spec("hello"), install=False).version == "1.0.0"


def test_without_may_install_a_needed_install_is_refused_not_done(
    registry: Path, toolrun_home: Path
) -> None:
    """The daemon prepares a run on its event loop this way, and installs in a thread."""
    resolver = resolver_for(toolrun_home, registry)
    resolver.resolve(parse_spec("hello@1.0"))
    with pytest.raises(WouldInstall):
        resolver.resolve(parse_spec("hello"), may_install=False)  # 1.1.0 is newer
    assert visible_versions(toolrun_home, "hello") == ["1.0.0"]
    assert resolver.resolve(parse_spec("hello@1.0"), may_install=False).version == "1.0.0"
    assert resolver.answers_locally
    remote = HttpRegistry("remote", "http://127.0.0.1:9/", timeout=1.0)
    assert not ToolResolver(resolver.installer, [*resolver.registries, remote]).answers_locally


def test_offline_never_asks_an_http_registry(registry: Path, toolrun_home: Path) -> None:
    """Offline means no network: folders (./registry, a share) still answer."""
    resolver = resolver_for(toolrun_home, registry)
    resolver.resolve(parse_spec("hello@1.0"))
    unreachable = HttpRegistry("remote", "http://127.0.0.1:9/", timeout=1.0)
    offline = ToolResolver(resolver.installer, [unreachable], offline=True)
    assert offline.resolve(parse_spec("hello")).version == "1.0.0"  # installed only
    assert offline.warnings == []  # the HTTP registry was not even tried
    with_folder = ToolResolver(
        resolver.installer, [unreachable, *resolver.registries], offline=True
    )
    assert with_folder.resolve(parse_spec("hello")).version == "1.1.0"
    assert with_folder.warnings == []


def test_a_changed_file_is_a_sha256_mismatch_and_nothing_is_installed(
    registry: Path, toolrun_home: Path
) -> None:
    (registry / "hello/1.1.0/main.py").write_text("print('tampered')\n")
    resolver = resolver_for(toolrun_home, registry)
    with pytest.raises(IntegrityError) as info:
        resolver.resolve(parse_spec("hello==1.1.0"))
    message = str(info.value)
    assert "main.py: sha256 mismatch: expected" in message and ", got " in message
    assert visible_versions(toolrun_home, "hello") == []
    assert not any((toolrun_home / "tools" / ".staging").iterdir())


def test_unlisted_files_are_refused(registry: Path, toolrun_home: Path) -> None:
    (registry / "hello/1.0.0/extra.dll").write_bytes(b"MZ")
    with pytest.raises(IntegrityError, match=r"extra\.dll is not listed"):
        resolver_for(toolrun_home, registry).resolve(parse_spec("hello==1.0.0"))


def test_a_manifest_published_under_another_version_is_refused(
    registry: Path, toolrun_home: Path
) -> None:
    (registry / "hello/1.0.0").rename(registry / "hello/1.0.5")
    with pytest.raises(IntegrityError, match=r"published as hello 1\.0\.5"):
        resolver_for(toolrun_home, registry).resolve(parse_spec("hello==1.0.5"))


def test_remove_and_verify(registry: Path, toolrun_home: Path) -> None:
    resolver = resolver_for(toolrun_home, registry)
    tool = resolver.resolve(parse_spec("hello==1.0.0"))
    assert resolver.installer.verify(tool) == []
    (tool.path / "main.py").write_text("changed")
    assert "main.py: sha256 mismatch" in resolver.installer.verify(tool)[0]
    resolver.installer.remove("hello", "1.0.0")
    assert visible_versions(toolrun_home, "hello") == []
    assert not (toolrun_home / "tools" / "hello").exists()


def test_eight_processes_installing_one_version_end_with_one_copy(
    registry: Path, toolrun_home: Path, workdir: Path
) -> None:
    write_tool(registry, "big", "1.0.0", extra_files={"data.bin": os.urandom(8 * 1024 * 1024)})
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "toolrun", "tool", "install", "big==1.0.0"],
            cwd=workdir,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(8)
    ]
    outputs = [p.communicate(timeout=120) for p in processes]
    assert [p.returncode for p in processes] == [0] * 8, outputs
    installed_lines = [out for out, _ in outputs if out.startswith("installed big 1.0.0")]
    assert len(installed_lines) == 1
    assert visible_versions(toolrun_home, "big") == ["1.0.0"]
    assert sorted(p.name for p in (toolrun_home / "tools" / "big").iterdir()) == ["1.0.0"]
    assert not any((toolrun_home / "tools" / ".staging").iterdir())
    installed = (toolrun_home / "tools/big/1.0.0/data.bin").read_bytes()
    assert installed == (registry / "big/1.0.0/data.bin").read_bytes()


def test_an_install_killed_mid_copy_leaves_nothing_visible(
    registry: Path, toolrun_home: Path, workdir: Path
) -> None:
    folder = write_tool(registry, "huge", "1.0.0", hash_files=False)
    with (folder / "data.bin").open("wb") as file:
        for _ in range(64):
            file.write(os.urandom(1024 * 1024) * 8)  # 512 MB, too big to copy in an instant
    from toolrun.tools.publish import rehash

    rehash(folder)
    staging = toolrun_home / "tools" / ".staging"
    process = subprocess.Popen(
        [sys.executable, "-m", "toolrun", "tool", "install", "huge"],
        cwd=workdir,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        partial = list(staging.glob("huge@1.0.0-*/data.bin")) if staging.exists() else []
        if partial and partial[0].stat().st_size > 0:
            break
        time.sleep(0.005)
    else:
        pytest.fail("the install never started copying")
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert visible_versions(toolrun_home, "huge") == []
    listing = subprocess.run(
        [sys.executable, "-m", "toolrun", "tool", "list", "--json"],
        cwd=workdir,
        capture_output=True,
        text=True,
        check=True,
    )
    assert listing.stdout.strip() == "[]"
    again = subprocess.run(
        [sys.executable, "-m", "toolrun", "tool", "install", "huge"],
        cwd=workdir,
        capture_output=True,
        text=True,
    )
    assert again.returncode == 0, again.stderr
    assert visible_versions(toolrun_home, "huge") == ["1.0.0"]
    assert not any(staging.iterdir()), "the dead install's staging folder was cleaned up"


def _mount_tmpfs(path: Path, options: str) -> bool:
    path.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], capture_output=True
    )
    return result.returncode == 0


@pytest.fixture
def small_data_dir(tmp_path: Path) -> Iterator[Path | None]:
    """A 1 MiB tmpfs as the data dir (a disk that fills up), or None where mounts are denied."""
    path = tmp_path / "small"
    if not _mount_tmpfs(path, "size=1m"):
        yield None
        return
    yield path
    subprocess.run(["umount", str(path)], check=False)


def test_a_full_disk_is_a_storage_error_and_leaves_nothing(
    registry: Path, tmp_path: Path, small_data_dir: Path | None
) -> None:
    write_tool(registry, "fat", "1.0.0", extra_files={"blob": os.urandom(2 * 1024 * 1024)})
    if small_data_dir is None:
        pytest.fail("this test needs tmpfs mounts (run as root, as CI does)")
    installer = Installer(small_data_dir / "tools")
    resolver = ToolResolver(installer, [FolderRegistry("test", registry)])
    with pytest.raises(StorageError, match="the disk is full"):
        resolver.resolve(parse_spec("fat"))
    assert installer.versions("fat") == []
    assert not any((small_data_dir / "tools" / ".staging").iterdir())
    # Something small still fits afterwards: the failed install left no debris behind.
    assert resolver.resolve(parse_spec("greet")).version == "0.1.0"


def test_a_read_only_data_dir_is_a_storage_error(
    registry: Path, tmp_path: Path, workdir: Path
) -> None:
    data = tmp_path / "ro"
    if os.geteuid() == 0:
        assert _mount_tmpfs(data, "ro,size=1m"), "tmpfs mounts are needed as root"
    else:
        data.mkdir()
        data.chmod(0o555)
    try:
        result = subprocess.run(
            [sys.executable, "-m", "toolrun", "tool", "install", "greet"],
            cwd=workdir,
            env={**os.environ, "TOOLRUN_HOME": str(data)},
            capture_output=True,
            text=True,
        )
    finally:
        if os.geteuid() == 0:
            subprocess.run(["umount", str(data)], check=False)
    assert result.returncode == 6
    assert "read-only file system" in result.stderr or "permission denied" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_receipt_is_read_again_only_when_its_file_changed(
    registry: Path, toolrun_home: Path
) -> None:
    import json

    resolver = resolver_for(toolrun_home, registry)
    resolver.resolve(parse_spec("hello==1.0.0"))
    installer = resolver.installer
    first = installer.get("hello", "1.0.0")
    assert first is not None and installer.get("hello", "1.0.0") is first  # kept
    receipt = first.path / ".toolrun-receipt.json"
    data = json.loads(receipt.read_text(encoding="utf-8"))
    data["source"] = "somewhere else"
    receipt.write_text(json.dumps(data), encoding="utf-8")
    changed = installer.get("hello", "1.0.0")
    assert changed is not first and changed is not None and changed.source == "somewhere else"
    receipt.write_text("{ damaged", encoding="utf-8")
    with pytest.raises(StorageError, match="unreadable receipt"):
        installer.get("hello", "1.0.0")
    receipt.unlink()
    assert installer.get("hello", "1.0.0") is None
