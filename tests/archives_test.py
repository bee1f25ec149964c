from __future__ import annotations

import io
import stat
import tarfile
import zipfile
from pathlib import Path

import pytest

from toolrun.errors import IntegrityError
from toolrun.tools.archives import extract, safe_member_path


@pytest.mark.parametrize(
    "name", ["/etc/passwd", "../x", "a/../../x", "C:/windows/x", "a\\..\\..\\x", "", "./"]
)
def test_escaping_member_names_are_refused(name: str) -> None:
    with pytest.raises(IntegrityError):
        safe_member_path(name)


def test_plain_member_names_are_kept() -> None:
    assert str(safe_member_path("./bin/tool.py")) == "bin/tool.py"


def zip_with(tmp_path: Path, entries: list[tuple[zipfile.ZipInfo | str, bytes]]) -> Path:
    path = tmp_path / "t.zip"
    with zipfile.ZipFile(path, "w") as archive:
        for info, data in entries:
            archive.writestr(info, data)
    return path


def test_zip_slip_leaves_nothing_behind(tmp_path: Path) -> None:
    archive = zip_with(
        tmp_path,
        [("tool.toml", manifest("ok.txt")), ("ok.txt", b"fine"), ("../../evil.txt", b"evil")],
    )
    target = tmp_path / "target"
    target.mkdir()
    with pytest.raises(IntegrityError, match="climbs out"):
        extract(archive, target)
    assert list(target.iterdir()) == []
    assert not (tmp_path / "evil.txt").exists()


def test_zip_symlinks_are_refused(tmp_path: Path) -> None:
    link = zipfile.ZipInfo("link")
    link.external_attr = (stat.S_IFLNK | 0o777) << 16
    archive = zip_with(tmp_path, [(link, b"/etc/passwd")])
    with pytest.raises(IntegrityError, match="symbolic link"):
        extract(archive, tmp_path / "t")


def test_tar_links_and_escapes_are_refused(tmp_path: Path) -> None:
    for kind, name in ((tarfile.SYMTYPE, "link"), (tarfile.REGTYPE, "/abs")):
        path = tmp_path / f"t{kind!r}.tar.gz"
        with tarfile.open(path, "w:gz") as archive:
            info = tarfile.TarInfo(name)
            info.type = kind
            info.linkname = "/etc/passwd"
            archive.addfile(info, io.BytesIO(b""))
        with pytest.raises(IntegrityError):
            extract(path, tmp_path / "t")


def manifest(*files: str) -> bytes:
    listed = "".join(f'"{name}" = "{"0" * 64}"\n' for name in files)
    return (
        f'name = "t"\nversion = "1.0.0"\ncommand = ["{{python}}", "x"]\n[files]\n{listed}'
    ).encode()


def test_tar_gz_extracts(tmp_path: Path) -> None:
    path = tmp_path / "t.tar.gz"
    with tarfile.open(path, "w:gz") as archive:
        for name, data, mode in (
            ("tool.toml", manifest("bin/run.py"), 0o644),
            ("bin/run.py", b"hello", 0o755),
        ):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = mode
            archive.addfile(info, io.BytesIO(data))
    extract(path, tmp_path / "out")
    assert (tmp_path / "out" / "bin" / "run.py").read_bytes() == b"hello"


def test_a_member_the_manifest_does_not_list_is_refused_before_anything_is_written(
    tmp_path: Path,
) -> None:
    archive = zip_with(
        tmp_path, [("tool.toml", manifest("a.py")), ("a.py", b"x"), ("extra.bin", b"y")]
    )
    target = tmp_path / "target"
    target.mkdir()
    with pytest.raises(IntegrityError, match=r"'extra\.bin', which its tool.toml does not list"):
        extract(archive, target)
    assert list(target.iterdir()) == []
    no_manifest = zip_with(tmp_path, [("a.py", b"x")])
    with pytest.raises(IntegrityError, match=r"holds no tool\.toml"):
        extract(no_manifest, target)


def test_an_archive_bomb_is_refused_as_soon_as_it_passes_its_limit(tmp_path: Path) -> None:
    import time

    path = tmp_path / "bomb.zip"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("tool.toml", manifest("big.bin"))
        with archive.open("big.bin", "w", force_zip64=True) as member:
            zeros = bytes(1024 * 1024)
            for _ in range(256):  # 256 MiB of zeros, some 250 KB compressed
                member.write(zeros)
    assert path.stat().st_size < 1024 * 1024
    target = tmp_path / "target"
    target.mkdir()
    started = time.monotonic()
    with pytest.raises(IntegrityError, match="unpacks to more than 10,485,760 bytes"):
        extract(path, target, limit=10 * 1024 * 1024)
    assert time.monotonic() - started < 2  # refused from what it says of itself
    # One that lies about its size is stopped once it has written past the limit.
    lying = tmp_path / "lying.zip"
    data = path.read_bytes()
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo("big.bin")
    assert info.file_size == 256 * 1024**2
    patched = data.replace((256 * 1024**2).to_bytes(8, "little"), (1000).to_bytes(8, "little"))
    lying.write_bytes(patched)
    with pytest.raises(IntegrityError):
        extract(lying, tmp_path / "t2", limit=10 * 1024 * 1024)
    assert sum(f.stat().st_size for f in (tmp_path / "t2").rglob("*") if f.is_file()) <= (
        11 * 1024 * 1024
    )


def test_garbage_is_not_an_archive(tmp_path: Path) -> None:
    path = tmp_path / "t.zip"
    path.write_bytes(b"not a zip")
    with pytest.raises(IntegrityError, match="not a valid zip"):
        extract(path, tmp_path / "out")
