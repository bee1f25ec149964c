"""A registry built by `toolrun registry build`, served by a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import write_tool


@pytest.fixture
def published(registry: Path, tmp_path: Path, toolrun, serve) -> str:  # type: ignore[no-untyped-def]
    """The test registry built into a static tree, served, and configured as 'team'."""
    write_tool(
        registry,
        "hello",
        "3.0.0",
        extra_files={"bin/data.bin": os.urandom(100_000), "lib/util.py": b"X = 1\n"},
    )
    out = tmp_path / "published"
    result = toolrun("registry", "build", str(registry), str(out))
    assert result.returncode == 0, result.stderr
    url = serve(out)
    assert toolrun("registry", "add", "team", url).returncode == 0
    (registry.parent / "registry").rename(registry.parent / "source")  # only HTTP from now on
    return url


def test_installs_from_http_are_byte_identical(
    published: str, toolrun, tmp_path: Path, toolrun_home: Path, workdir: Path
) -> None:  # type: ignore[no-untyped-def]
    result = toolrun("tool", "install", "hello")
    assert result.returncode == 0, result.stderr
    assert "installed hello 3.0.0 from team" in result.stdout
    source = workdir / "source" / "hello" / "3.0.0"
    installed = toolrun_home / "tools" / "hello" / "3.0.0"
    for relative in ("main.py", "bin/data.bin", "lib/util.py", "tool.toml"):
        assert (installed / relative).read_bytes() == (source / relative).read_bytes()
    assert toolrun("tool", "verify").returncode == 0


def test_registry_build_is_reproducible(registry: Path, tmp_path: Path, toolrun) -> None:  # type: ignore[no-untyped-def]
    for out in ("a", "b"):
        assert toolrun("registry", "build", str(registry), str(tmp_path / out)).returncode == 0
    index_a = json.loads((tmp_path / "a" / "index.json").read_text())
    index_b = json.loads((tmp_path / "b" / "index.json").read_text())
    assert index_a == index_b
    assert set(index_a["tools"]["hello"]["versions"]) == {"1.0.0", "1.1.0", "2.0.0-rc.1"}


def test_a_tampered_archive_is_refused_with_both_hashes(
    published: str, toolrun, tmp_path: Path, toolrun_home: Path
) -> None:  # type: ignore[no-untyped-def]
    archive = tmp_path / "published" / "hello" / "hello-1.1.0.zip"
    data = bytearray(archive.read_bytes())
    data[-30] ^= 0xFF
    archive.write_bytes(bytes(data))
    result = toolrun("tool", "install", "hello==1.1.0")
    assert result.returncode == 5
    assert "archive sha256 mismatch: expected" in result.stderr and ", got " in result.stderr
    assert not (toolrun_home / "tools" / "hello").exists()


def test_build_refuses_a_registry_whose_hashes_are_stale(
    registry: Path, tmp_path: Path, toolrun
) -> None:  # type: ignore[no-untyped-def]
    (registry / "greet/0.1.0/main.py").write_text("print('edited')\n")
    result = toolrun("registry", "build", str(registry), str(tmp_path / "out"))
    assert result.returncode == 5
    assert "registry rehash" in result.stderr
    assert toolrun("registry", "rehash", str(registry)).returncode == 0
    assert toolrun("registry", "build", str(registry), str(tmp_path / "out")).returncode == 0


@pytest.fixture
def silent_server() -> Iterator[str]:
    """A server that accepts connections and never answers: a registry that hangs."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}/"
    stop.set()
    thread.join()
    for connection in accepted:
        connection.close()
    listener.close()


def test_a_slow_registry_times_out_and_installed_tools_still_resolve(
    registry: Path, silent_server: str, toolrun
) -> None:  # type: ignore[no-untyped-def]
    assert toolrun("tool", "install", "greet").returncode == 0  # from ./registry
    assert toolrun("registry", "add", "slow", silent_server).returncode == 0
    assert toolrun("config", "set", "registry_timeout", "1").returncode == 0
    (registry.parent / "registry").rename(registry.parent / "gone")

    started = time.monotonic()
    result = toolrun("tool", "install", "greet")
    assert time.monotonic() - started < 10
    assert result.returncode == 0, result.stderr
    assert "greet 0.1.0 is already installed" in result.stdout
    assert "did not answer within 1s" in result.stderr

    missing = toolrun("tool", "install", "hello")
    assert missing.returncode == 4
    assert "unknown tool 'hello'" in missing.stderr and "did not answer within 1s" in missing.stderr

    offline = toolrun("tool", "install", "--offline", "greet")
    assert offline.returncode == 0 and offline.stderr == ""


def test_an_unreachable_registry_is_named(toolrun) -> None:  # type: ignore[no-untyped-def]
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    assert toolrun("registry", "add", "down", f"http://127.0.0.1:{port}/").returncode == 0
    result = toolrun("tool", "install", "anything")
    assert result.returncode == 4
    assert "registry 'down'" in result.stderr and "unreachable" in result.stderr


def test_a_malicious_archive_from_a_registry_installs_nothing(
    tmp_path: Path, serve, toolrun, toolrun_home: Path
) -> None:  # type: ignore[no-untyped-def]
    import hashlib
    import zipfile

    out = tmp_path / "evil"
    (out / "evil").mkdir(parents=True)
    archive = out / "evil" / "evil-1.0.0.zip"
    with zipfile.ZipFile(archive, "w") as bundle:
        bundle.writestr("tool.toml", 'name = "evil"\nversion = "1.0.0"\ncommand = ["x"]\n')
        bundle.writestr("../../escaped.txt", "gotcha")
    data = archive.read_bytes()
    index = {
        "format": 1,
        "tools": {
            "evil": {
                "versions": {
                    "1.0.0": {
                        "archive": "evil/evil-1.0.0.zip",
                        "sha256": hashlib.sha256(data).hexdigest(),
                        "size": len(data),
                    }
                }
            }
        },
    }
    (out / "index.json").write_text(json.dumps(index))
    assert toolrun("registry", "add", "evil", serve(out)).returncode == 0
    result = toolrun("tool", "install", "evil")
    assert result.returncode == 5
    assert "climbs out of its folder" in result.stderr
    assert not (toolrun_home / "tools" / "evil").exists()
    assert not list(toolrun_home.rglob("escaped.txt")) and not list(tmp_path.rglob("escaped.txt"))
