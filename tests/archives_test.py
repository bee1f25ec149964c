from __future__ import annotations

import io
import stat
import tarfile
import zipfile
from pathlib import Path

import pytest

from toolrun.archives import extract, safe_member_path
from toolrun.errors import IntegrityError


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
    archive = zip_with(tmp_path, [("ok.txt", b"fine"), ("../../evil.txt", b"evil")])
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


def test_tar_gz_extracts(tmp_path: Path) -> None:
    path = tmp_path / "t.tar.gz"
    with tarfile.open(path, "w:gz") as archive:
        info = tarfile.TarInfo("bin/run.py")
        info.size = 5
        info.mode = 0o755
        archive.addfile(info, io.BytesIO(b"hello"))
    extract(path, tmp_path / "out")
    assert (tmp_path / "out" / "bin" / "run.py").read_bytes() == b"hello"


def test_garbage_is_not_an_archive(tmp_path: Path) -> None:
    path = tmp_path / "t.zip"
    path.write_bytes(b"not a zip")
    with pytest.raises(IntegrityError, match="not a valid zip"):
        extract(path, tmp_path / "out")
