"""Tool archives: written reproducibly, and unpacked only when every member stays inside."""

from __future__ import annotations

import hashlib
import shutil
import stat
import tarfile
import zipfile
import zlib
from collections.abc import Iterable
from pathlib import Path, PurePosixPath
from typing import IO

from .errors import IntegrityError

CHUNK = 1024 * 1024
# Fixed timestamps make `registry build` give byte-identical archives for identical tools.
_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)


def safe_member_path(name: str) -> PurePosixPath:
    """The member's path relative to the target folder, or IntegrityError if it would escape."""
    if "\x00" in name:
        raise IntegrityError(f"archive member {name!r} has a NUL byte in its name")
    normalised = name.replace("\\", "/")
    path = PurePosixPath(normalised)
    if normalised.startswith("/") or (path.parts and ":" in path.parts[0]):
        raise IntegrityError(f"archive member {name!r} is an absolute path")
    if ".." in path.parts:
        raise IntegrityError(f"archive member {name!r} climbs out of its folder with '..'")
    parts = [p for p in path.parts if p not in ("", ".")]
    if not parts:
        raise IntegrityError(f"archive member {name!r} has an empty name")
    return PurePosixPath(*parts)


def write_zip(source: Path, files: Iterable[str], destination: Path) -> None:
    """Zip ``files`` (posix paths relative to ``source``) in sorted order, reproducibly."""
    with zipfile.ZipFile(destination, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for relative in sorted(files):
            info = zipfile.ZipInfo(relative, date_time=_ZIP_EPOCH)
            info.compress_type = zipfile.ZIP_DEFLATED
            mode = (source / relative).stat().st_mode
            executable = 0o755 if mode & stat.S_IXUSR else 0o644
            info.external_attr = (stat.S_IFREG | executable) << 16
            with (source / relative).open("rb") as src, archive.open(info, "w") as dst:
                shutil.copyfileobj(src, dst, CHUNK)


def copy_hashing(source: IO[bytes], destination: Path) -> str:
    """Copy a stream to a file and return its sha256, reading the data once."""
    digest = hashlib.sha256()
    with destination.open("wb") as file:
        while chunk := source.read(CHUNK):
            digest.update(chunk)
            file.write(chunk)
    return digest.hexdigest()


def extract(archive_path: Path, target: Path) -> dict[str, str]:
    """Unpack a .zip or .tar.gz into ``target``, refusing links and escaping paths.

    Returns each file's sha256 (posix path relative to ``target``), computed while writing.
    """
    name = archive_path.name
    if name.endswith(".zip"):
        return _extract_zip(archive_path, target)
    if name.endswith((".tar.gz", ".tgz", ".tar")):
        return _extract_tar(archive_path, target)
    else:
        raise IntegrityError(f"{name}: unknown archive type (expected .zip or .tar.gz)")


def _extract_zip(archive_path: Path, target: Path) -> dict[str, str]:
    try:
        archive = zipfile.ZipFile(archive_path)
    except zipfile.BadZipFile as exc:
        raise IntegrityError(f"{archive_path.name}: not a valid zip archive: {exc}") from None
    with archive:
        members = archive.infolist()
        # Check every member before writing any, so a bad archive leaves nothing behind.
        checked = []
        for info in members:
            relative = safe_member_path(info.filename)
            kind = stat.S_IFMT(info.external_attr >> 16)
            if kind == stat.S_IFLNK:
                raise IntegrityError(f"archive member {info.filename!r} is a symbolic link")
            if kind not in (0, stat.S_IFREG, stat.S_IFDIR):
                raise IntegrityError(f"archive member {info.filename!r} is not a regular file")
            checked.append((info, relative))
        hashes = {}
        for info, relative in checked:
            destination = target.joinpath(*relative.parts)
            if info.is_dir():
                destination.mkdir(parents=True, exist_ok=True)
                continue
            destination.parent.mkdir(parents=True, exist_ok=True)
            with archive.open(info) as src:
                hashes[relative.as_posix()] = copy_hashing(src, destination)
            if (info.external_attr >> 16) & stat.S_IXUSR:
                destination.chmod(0o755)
        return hashes


def _extract_tar(archive_path: Path, target: Path) -> dict[str, str]:
    try:
        with tarfile.open(archive_path) as archive:
            return _extract_tar_members(archive, target)
    except (tarfile.TarError, EOFError, zlib.error) as exc:
        raise IntegrityError(f"{archive_path.name}: not a valid tar archive: {exc}") from None


def _extract_tar_members(archive: tarfile.TarFile, target: Path) -> dict[str, str]:
    members = archive.getmembers()
    for member in members:
        safe_member_path(member.name)
        if member.issym() or member.islnk():
            raise IntegrityError(f"archive member {member.name!r} is a link")
        if not (member.isfile() or member.isdir()):
            raise IntegrityError(f"archive member {member.name!r} is not a regular file")
    hashes = {}
    for member in members:
        relative = safe_member_path(member.name)
        destination = target.joinpath(*relative.parts)
        if member.isdir():
            destination.mkdir(parents=True, exist_ok=True)
            continue
        destination.parent.mkdir(parents=True, exist_ok=True)
        source = archive.extractfile(member)
        assert source is not None
        with source:
            hashes[relative.as_posix()] = copy_hashing(source, destination)
        if member.mode & stat.S_IXUSR:
            destination.chmod(0o755)
    return hashes


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while chunk := file.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()
