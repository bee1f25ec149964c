"""A workspace packed and unpacked between workers: only what changed goes back, nothing
outside the folder is ever read or written, and a damaged or hostile archive is refused whole.
(Carried for real between two workers: cluster_test.)"""

from __future__ import annotations

import hashlib
import io
import os
import time
import zipfile
from pathlib import Path

import pytest

from toolrun.cluster.workspaces import Packed, WorkspaceError, manifest, pack, unpack

CAP = 1024 * 1024


def packed_zip(members: dict[str, bytes], *, lie: int | None = None) -> Packed:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    data = buffer.getvalue()
    if lie is not None:
        # The central directory says each file is `lie` bytes, whatever it holds: a bomb's trick.
        data = _declared_sizes(data, lie)
    size = sum(len(d) for d in members.values())
    return Packed("tcp://elsewhere", data, hashlib.sha256(data).hexdigest(), len(members), size)


def _declared_sizes(data: bytes, size: int) -> bytes:
    out = bytearray(data)
    at = out.find(b"PK\x01\x02")
    while at != -1:
        out[at + 24 : at + 28] = size.to_bytes(4, "little")
        at = out.find(b"PK\x01\x02", at + 4)
    at = out.find(b"PK\x03\x04")
    while at != -1:
        out[at + 22 : at + 26] = size.to_bytes(4, "little")
        at = out.find(b"PK\x03\x04", at + 4)
    return bytes(out)


def test_there_and_back_only_what_the_step_made(tmp_path: Path) -> None:
    home, away = tmp_path / "home", tmp_path / "away"
    (home / "tables").mkdir(parents=True)
    (home / "tables" / "d01.txt").write_text("table")
    (home / "keep.txt").write_text("kept")
    (tmp_path / "secret").write_text("not the workspace's")
    (home / "link").symlink_to(tmp_path / "secret")
    there = pack(home, CAP, source="tcp://home")
    assert (there.files, there.size) == (2, 9), "the symlink is not carried"
    arrived = unpack(there, away, CAP)
    assert (away / "tables" / "d01.txt").read_text() == "table" and not (away / "link").exists()

    time.sleep(0.01)
    (away / "out").mkdir()
    (away / "out" / "result.txt").write_text("made")
    (away / "tables" / "d01.txt").write_text("changed")
    back = pack(away, CAP, source="tcp://away", since=arrived)
    assert back.files == 2
    unpack(back, home, CAP)
    assert (home / "out" / "result.txt").read_text() == "made"
    assert (home / "tables" / "d01.txt").read_text() == "changed"
    assert (home / "keep.txt").read_text() == "kept"
    assert set(manifest(home)) == {"tables/d01.txt", "keep.txt", "out/result.txt"}


def test_over_the_cap_is_refused_saying_the_sizes(tmp_path: Path) -> None:
    (tmp_path / "big").write_bytes(os.urandom(2000))
    with pytest.raises(WorkspaceError) as refused:
        pack(tmp_path, 1024)
    assert "holds 1.95 KB in 1 files, over the 1 KB a cluster carries" in refused.value.message


@pytest.mark.parametrize(
    "name", ["../escape.txt", "/etc/passwd", "a/../../b", "C:/x", "C:x", "a\\..\\b"]
)
def test_a_path_outside_the_workspace_is_refused_before_anything_is_written(
    tmp_path: Path, name: str
) -> None:
    target = tmp_path / "ws" / "deep"
    hostile = packed_zip({"fine.txt": b"ok", name: b"pwned"})
    with pytest.raises(WorkspaceError) as refused:
        unpack(hostile, target, CAP)
    assert "a path toolrun never writes" in refused.value.message
    assert not target.exists() and not (tmp_path / "escape.txt").exists()


def test_damage_and_bombs_are_refused(tmp_path: Path) -> None:
    good = packed_zip({"a.txt": b"a" * 100})
    damaged = Packed(good.source, good.data[:-10] + b"0123456789", good.sha256, 1, 100)
    with pytest.raises(WorkspaceError, match="arrived damaged"):
        unpack(damaged, tmp_path / "one", CAP)
    junk = b"not a zip at all"
    with pytest.raises(WorkspaceError, match="not a zip"):
        unpack(Packed("", junk, hashlib.sha256(junk).hexdigest(), 0, 0), tmp_path / "two", CAP)
    with pytest.raises(WorkspaceError, match="would unpack to"):
        unpack(packed_zip({"a.txt": b"a" * 2000}), tmp_path / "three", 1024)
    # Sizes declared small, contents large: stopped at the declared size, not the real one.
    bomb = packed_zip({"z.txt": b"\0" * 500_000}, lie=1000)
    with pytest.raises(WorkspaceError):
        unpack(bomb, tmp_path / "four", CAP)
    written = tmp_path / "four" / "z.txt"
    assert not written.exists() or written.stat().st_size <= 1000 + (1 << 20)
