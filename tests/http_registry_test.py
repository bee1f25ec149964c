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
from conftest import Serve, Toolrun, write_tool


@pytest.fixture
def published(registry: Path, tmp_path: Path, toolrun: Toolrun, serve: Serve) -> str:
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
    # Published a minute ago, as a registry usually is: its date can vouch for the index.
    # (One sent in the second it was written cannot: see test_an_index_dated_as_it_is_sent...)
    minute_ago = time.time() - 60
    os.utime(out / "index.json", (minute_ago, minute_ago))
    url = serve(out)
    assert toolrun("registry", "add", "team", url).returncode == 0
    (registry.parent / "registry").rename(registry.parent / "source")  # only HTTP from now on
    return url


def test_installs_from_http_are_byte_identical(
    published: str, toolrun: Toolrun, tmp_path: Path, toolrun_home: Path, workdir: Path
) -> None:
    result = toolrun("tool", "install", "hello")
    assert result.returncode == 0, result.stderr
    assert "installed hello 3.0.0 from team" in result.stdout
    source = workdir / "source" / "hello" / "3.0.0"
    installed = toolrun_home / "tools" / "hello" / "3.0.0"
    for relative in ("main.py", "bin/data.bin", "lib/util.py", "tool.toml"):
        assert (installed / relative).read_bytes() == (source / relative).read_bytes()
    assert toolrun("tool", "verify").returncode == 0


def test_registry_build_is_reproducible(registry: Path, tmp_path: Path, toolrun: Toolrun) -> None:
    for out in ("a", "b"):
        assert toolrun("registry", "build", str(registry), str(tmp_path / out)).returncode == 0
    index_a = json.loads((tmp_path / "a" / "index.json").read_text())
    index_b = json.loads((tmp_path / "b" / "index.json").read_text())
    assert index_a == index_b
    assert set(index_a["tools"]["hello"]["versions"]) == {"1.0.0", "1.1.0", "2.0.0-rc.1"}


def test_a_tampered_archive_is_refused_with_both_hashes(
    published: str, toolrun: Toolrun, tmp_path: Path, toolrun_home: Path
) -> None:
    archive = tmp_path / "published" / "hello" / "hello-1.1.0.zip"
    data = bytearray(archive.read_bytes())
    data[-30] ^= 0xFF
    archive.write_bytes(bytes(data))
    result = toolrun("tool", "install", "hello==1.1.0")
    assert result.returncode == 5
    assert "archive sha256 mismatch: expected" in result.stderr and ", got " in result.stderr
    assert not (toolrun_home / "tools" / "hello").exists()


def test_an_archive_is_held_to_the_unpacked_size_its_index_declares(
    published: str, toolrun: Toolrun, tmp_path: Path, toolrun_home: Path
) -> None:
    index_path = tmp_path / "published" / "index.json"
    index = json.loads(index_path.read_text())
    entry = index["tools"]["hello"]["versions"]["3.0.0"]
    assert entry["unpacked_size"] > 100_000  # tool.toml and its files, as registry build counts
    entry["unpacked_size"] = 1000
    index_path.write_text(json.dumps(index))
    result = toolrun("tool", "install", "hello==3.0.0")
    assert result.returncode == 5, result.stderr
    assert "unpacks to more than 1,000 bytes" in result.stderr
    assert not (toolrun_home / "tools" / "hello" / "3.0.0").exists()
    assert toolrun("config", "set", "max_unpacked", "100B").returncode == 0
    refused = toolrun("tool", "install", "hello==1.1.0")
    assert refused.returncode == 5 and "max_unpacked" in refused.stderr


def test_build_refuses_a_registry_whose_hashes_are_stale(
    registry: Path, tmp_path: Path, toolrun: Toolrun
) -> None:
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
    registry: Path, silent_server: str, toolrun: Toolrun
) -> None:
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
    assert missing.returncode == 3  # the registry that did not answer may have it
    assert "'hello' is not installed and a registry could not be asked" in missing.stderr
    assert "did not answer within 1s" in missing.stderr

    offline = toolrun("tool", "install", "--offline", "greet")
    assert offline.returncode == 0 and offline.stderr == ""


def test_an_unreachable_registry_is_named(toolrun: Toolrun) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    assert toolrun("registry", "add", "down", f"http://127.0.0.1:{port}/").returncode == 0
    result = toolrun("tool", "install", "anything")
    assert result.returncode == 3  # the registry is the problem, as --help says of exit 3
    assert "registry 'down'" in result.stderr and "unreachable" in result.stderr
    assert toolrun("registry", "remove", "nope").returncode == 4


def test_a_malicious_archive_from_a_registry_installs_nothing(
    tmp_path: Path, serve: Serve, toolrun: Toolrun, toolrun_home: Path
) -> None:
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


def _index_requests(serve: Serve) -> list[tuple[int, dict[str, str]]]:
    return [(status, headers) for path, status, headers in serve.answered if path == "/index.json"]


def test_runs_reuse_the_index_and_then_check_it_with_a_conditional_get(
    published: str, toolrun: Toolrun, serve: Serve, toolrun_home: Path
) -> None:
    first = toolrun("exec", "hello")
    assert first.returncode == 0 and first.stdout == "hello 3.0.0\n", first.stderr
    assert [status for status, _ in _index_requests(serve)] == [200]
    assert list((toolrun_home / "cache" / "registries").glob("*.json"))

    # Within registry_cache seconds (300 by default) a run asks the registry nothing.
    again = toolrun("exec", "hello@^3")
    assert again.returncode == 0 and again.stdout == "hello 3.0.0\n", again.stderr
    assert len(_index_requests(serve)) == 1

    # Past it, the kept copy is checked: the registry answers 304 and sends no index.
    assert toolrun("config", "set", "registry_cache", "0").returncode == 0
    checked = toolrun("exec", "hello")
    assert checked.returncode == 0 and checked.stdout == "hello 3.0.0\n", checked.stderr
    status, headers = _index_requests(serve)[-1]
    assert status == 304 and "If-Modified-Since" in headers


def test_a_version_published_after_the_index_was_kept_is_found_when_asked_for(
    published: str, toolrun: Toolrun, serve: Serve, tmp_path: Path, workdir: Path
) -> None:
    assert toolrun("exec", "hello").stdout == "hello 3.0.0\n"
    write_tool(workdir / "source", "hello", "4.0.0")
    rebuilt = toolrun("registry", "build", str(workdir / "source"), str(tmp_path / "published"))
    assert rebuilt.returncode == 0, rebuilt.stderr

    # "latest" may come from the kept index for a few minutes...
    assert toolrun("exec", "hello").stdout == "hello 3.0.0\n"
    # ...but a version the kept index does not know sends toolrun to the registry at once.
    pinned = toolrun("exec", "hello==4.0.0")
    assert pinned.returncode == 0 and pinned.stdout == "hello 4.0.0\n", pinned.stderr
    assert toolrun("exec", "hello").stdout == "hello 4.0.0\n"
    # `tool versions` (like install, upgrade and list --available) always asks.
    requests_before = len(_index_requests(serve))
    listed = toolrun("tool", "versions", "hello")
    assert "4.0.0" in listed.stdout
    assert len(_index_requests(serve)) == requests_before + 1


def test_an_index_dated_as_it_is_sent_is_fetched_whole_next_time(
    published: str, toolrun: Toolrun, serve: Serve, tmp_path: Path, workdir: Path
) -> None:
    # Rebuilt in the second it is then fetched, and again within that second: asked "modified
    # since?" with that date, the registry would answer 304 and keep 4.0.0 hidden.
    # The file's date is set a little ahead, so that "the same second" holds on a slow machine.
    written = time.time() + 5
    index = tmp_path / "published" / "index.json"
    write_tool(workdir / "source", "hello", "4.0.0")
    assert toolrun("registry", "build", str(workdir / "source"), str(tmp_path / "published"))
    os.utime(index, (written, written))
    assert toolrun("config", "set", "registry_cache", "0").returncode == 0
    assert toolrun("exec", "hello").stdout == "hello 4.0.0\n"
    write_tool(workdir / "source", "hello", "5.0.0")
    assert toolrun("registry", "build", str(workdir / "source"), str(tmp_path / "published"))
    os.utime(index, (written, written))
    found = toolrun("exec", "hello")
    assert found.stdout == "hello 5.0.0\n", found.stderr
    status, headers = _index_requests(serve)[-1]
    assert status == 200 and "If-Modified-Since" not in headers


def test_a_pinned_installed_version_needs_no_registry(
    published: str, toolrun: Toolrun, serve: Serve
) -> None:
    assert toolrun("tool", "install", "hello==1.1.0").returncode == 0
    asked = len(_index_requests(serve))
    assert toolrun("config", "set", "registry_cache", "0").returncode == 0
    result = toolrun("exec", "hello==1.1.0")
    assert result.returncode == 0 and result.stdout == "hello 1.1.0\n", result.stderr
    assert len(_index_requests(serve)) == asked


def test_a_spoilt_cached_index_is_fetched_again(
    published: str, toolrun: Toolrun, serve: Serve, toolrun_home: Path
) -> None:
    assert toolrun("exec", "hello").returncode == 0
    (kept,) = (toolrun_home / "cache" / "registries").glob("*.json")
    for spoilt in ("{not json", '{"url": 1}', json.dumps({"url": published + "index.json"})):
        kept.write_text(spoilt)
        result = toolrun("exec", "hello")
        assert result.returncode == 0 and result.stdout == "hello 3.0.0\n", result.stderr
        assert result.stderr == ""
    assert [status for status, _ in _index_requests(serve)] == [200, 200, 200, 200]


def test_a_daemon_sees_a_new_version_once_its_copy_of_the_index_is_old(
    published: str, serve: Serve, workdir: Path, tmp_path: Path, toolrun: Toolrun
) -> None:
    from toolrun.tools.index_cache import IndexCache
    from toolrun.tools.registry import HttpRegistry

    # One registry object asked again and again, as a daemon's is.
    registry = HttpRegistry(
        "team", published, timeout=5, cache=IndexCache(tmp_path / "cache"), max_age=60
    )
    assert registry.versions("hello")[-1] == "3.0.0"
    write_tool(workdir / "source", "hello", "4.0.0")
    assert toolrun("registry", "build", str(workdir / "source"), str(tmp_path / "published"))
    assert registry.versions("hello")[-1] == "3.0.0"  # the copy in memory
    # Age the copy rather than sleep: a slow machine must not make the first check see it old.
    assert registry._copy is not None
    registry._copy.checked_at -= 61
    assert registry.versions("hello")[-1] == "4.0.0"
    assert [status for status, _ in _index_requests(serve)] == [200, 200]


def test_registry_cache_takes_a_duration(toolrun: Toolrun) -> None:
    for bad in ("-1", "soon", "nan"):
        result = toolrun("config", "set", "--", "registry_cache", bad)
        assert result.returncode == 2, (bad, result.stderr)
        assert "registry_cache" in result.stderr and "a duration such as 30s" in result.stderr
    assert toolrun("config", "set", "registry_cache", "0").returncode == 0
    assert toolrun("config", "set", "registry_cache", "5m").returncode == 0
    assert toolrun("config", "get", "registry_cache").stdout.strip() in ("300", "300.0")
