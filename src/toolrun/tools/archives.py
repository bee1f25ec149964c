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

from ..errors import IntegrityError, ToolrunError

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


class PastLimit(Exception):
    """An archive holds more than it may unpack to."""


def copy_hashing(source: IO[bytes], destination: Path, budget: list[int] | None = None) -> str:
    """Copy a stream to a file and return its sha256, reading the data once. ``budget``
    holds the bytes still allowed: passing it stops the copy at once (PastLimit)."""
    digest = hashlib.sha256()
    with destination.open("wb") as file:
        while chunk := source.read(CHUNK):
            if budget is not None:
                budget[0] -= len(chunk)
                if budget[0] < 0:
                    raise PastLimit
            digest.update(chunk)
            file.write(chunk)
    return digest.hexdigest()


UNLIMITED = 1 << 62
MAX_MANIFEST = 1024 * 1024


def extract(archive_path: Path, target: Path, *, limit: int = UNLIMITED) -> dict[str, str]:
    """Unpack a .zip or .tar.gz into ``target``, refusing links and escaping paths, files
    its manifest does not list, and more than ``limit`` bytes in all (an archive bomb is
    refused as soon as it passes it, not once unpacked).

    Returns each file's sha256 (posix path relative to ``target``), computed while writing.
    """
    name = archive_path.name
    try:
        if name.endswith(".zip"):
            return _extract_zip(archive_path, target, limit)
        if name.endswith((".tar.gz", ".tgz", ".tar")):
            return _extract_tar(archive_path, target, limit)
    except (zipfile.BadZipFile, zlib.error, EOFError) as exc:
        raise IntegrityError(f"{name}: a damaged archive: {exc}; nothing installed") from None
    except PastLimit:
        raise IntegrityError(
            f"{name}: unpacks to more than {limit:,} bytes (what its registry declares, or "
            "max_unpacked in config.toml); refused, nothing installed"
        ) from None
    raise IntegrityError(f"{name}: unknown archive type (expected .zip or .tar.gz)")


def _listed(manifest_text: bytes, archive_name: str) -> set[str]:
    """The files the archive's own tool.toml lists: nothing else is unpacked."""
    import tomllib

    from .manifest import MANIFEST_NAME, manifest_from_dict

    where = f"{archive_name}!/{MANIFEST_NAME}"
    try:
        data = tomllib.loads(manifest_text.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise IntegrityError(f"{where}: not valid TOML: {exc}") from None
    try:
        manifest = manifest_from_dict(data, source=where)
    except ToolrunError as exc:
        raise IntegrityError(exc.message) from None
    return {MANIFEST_NAME, *manifest.files}


def _check_listed(relative: PurePosixPath, listed: set[str], archive_name: str) -> None:
    if relative.as_posix() not in listed:
        raise IntegrityError(
            f"{archive_name}: holds {relative.as_posix()!r}, which its tool.toml does not list"
        )


def _extract_zip(archive_path: Path, target: Path, limit: int) -> dict[str, str]:
    from .manifest import MANIFEST_NAME

    try:
        archive = zipfile.ZipFile(archive_path)
    except zipfile.BadZipFile as exc:
        raise IntegrityError(f"{archive_path.name}: not a valid zip archive: {exc}") from None
    with archive:
        members = archive.infolist()
        # Check every member before writing any, so a bad archive leaves nothing behind.
        checked = []
        manifest = None
        for info in members:
            relative = safe_member_path(info.filename)
            kind = stat.S_IFMT(info.external_attr >> 16)
            if kind == stat.S_IFLNK:
                raise IntegrityError(f"archive member {info.filename!r} is a symbolic link")
            if kind not in (0, stat.S_IFREG, stat.S_IFDIR):
                raise IntegrityError(f"archive member {info.filename!r} is not a regular file")
            if relative.as_posix() == MANIFEST_NAME and not info.is_dir():
                manifest = info
            checked.append((info, relative))
        if manifest is None:
            raise IntegrityError(f"{archive_path.name}: holds no {MANIFEST_NAME}")
        with archive.open(manifest) as file:
            listed = _listed(file.read(MAX_MANIFEST), archive_path.name)
        files = [(info, relative) for info, relative in checked if not info.is_dir()]
        for _, relative in files:
            _check_listed(relative, listed, archive_path.name)
        if sum(info.file_size for info, _ in files) > limit:  # what it says of itself
            raise PastLimit
        budget = [limit]  # what it really holds, counted as it is written
        hashes = {}
        for info, relative in checked:
            destination = target.joinpath(*relative.parts)
            if info.is_dir():
                destination.mkdir(parents=True, exist_ok=True)
                continue
            destination.parent.mkdir(parents=True, exist_ok=True)
            with archive.open(info) as src:
                hashes[relative.as_posix()] = copy_hashing(src, destination, budget)
            if (info.external_attr >> 16) & stat.S_IXUSR:
                destination.chmod(0o755)
        return hashes


def _extract_tar(archive_path: Path, target: Path, limit: int) -> dict[str, str]:
    try:
        with tarfile.open(archive_path) as archive:
            return _extract_tar_members(archive, target, limit, archive_path.name)
    except (tarfile.TarError, EOFError, zlib.error) as exc:
        raise IntegrityError(f"{archive_path.name}: not a valid tar archive: {exc}") from None


def _extract_tar_members(
    archive: tarfile.TarFile, target: Path, limit: int, name: str
) -> dict[str, str]:
    from .manifest import MANIFEST_NAME

    members = archive.getmembers()
    manifest = None
    for member in members:
        relative = safe_member_path(member.name)
        if member.issym() or member.islnk():
            raise IntegrityError(f"archive member {member.name!r} is a link")
        if not (member.isfile() or member.isdir()):
            raise IntegrityError(f"archive member {member.name!r} is not a regular file")
        if relative.as_posix() == MANIFEST_NAME and member.isfile():
            manifest = member
    if manifest is None:
        raise IntegrityError(f"{name}: holds no {MANIFEST_NAME}")
    source = archive.extractfile(manifest)
    assert source is not None
    with source:
        listed = _listed(source.read(MAX_MANIFEST), name)
    files = [member for member in members if member.isfile()]
    for member in files:
        _check_listed(safe_member_path(member.name), listed, name)
    if sum(member.size for member in files) > limit:
        raise PastLimit
    budget = [limit]
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
            hashes[relative.as_posix()] = copy_hashing(source, destination, budget)
        if member.mode & stat.S_IXUSR:
            destination.chmod(0o755)
    return hashes


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while chunk := file.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()
