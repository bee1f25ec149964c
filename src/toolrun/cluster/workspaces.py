"""A run's workspace on the move: packed where it is, checked and unpacked where a step goes,
the step's results packed again and unpacked at the run's home; and its final state fetched
back to the daemon for ``/api/v1/runs/{id}/artifacts``.

A workspace travels as a zip (deflate at its fastest: tables and exports shrink well, and the
CPU is what a build machine has least of) in Dask's own data transfer, worker to worker.
Each pack names its sha256, checked before anything is written, and is capped (the config
key ``cluster_workspace_cap``). Unpacking takes only plain relative paths, never more than
the bytes the archive declares nor more than the cap: a damaged or hostile archive is refused
whole, before a file of it is written. Symbolic links are not carried: one could point at any
file of the machine that packs.
"""

from __future__ import annotations

import hashlib
import io
import os
import zipfile
import zlib
from pathlib import Path, PurePosixPath

from ..errors import ToolrunError
from ..records import record
from ..units import format_size

MAX_FILES = 100_000
CHUNK = 1 << 20

Manifest = dict[str, tuple[int, int]]  # relative path -> (size, mtime_ns)


class WorkspaceError(ToolrunError):
    """A workspace that cannot travel: over the cap, damaged, or not toolrun's."""


class CarryFailed(Exception):
    """Raised by a Dask task that packs or unpacks a workspace (a plain exception: Dask
    pickles it back to the daemon, which says it as the attempt's failure)."""


@record(frozen=True)
class Packed:
    source: str  # the address of the worker it was packed on ("" on the daemon)
    data: bytes
    sha256: str
    files: int
    size: int  # the bytes of its files, unpacked


def manifest(folder: Path) -> Manifest:
    """Every regular file under ``folder`` with its size and mtime: what changed since is
    what a step made."""
    found: Manifest = {}
    if not folder.is_dir():
        return found
    for root, dirs, names in os.walk(folder):
        base = Path(root)
        dirs[:] = [d for d in dirs if not (base / d).is_symlink()]
        for name in names:
            path = base / name
            if path.is_symlink() or not path.is_file():
                continue
            stat = path.stat()
            found[path.relative_to(folder).as_posix()] = (stat.st_size, stat.st_mtime_ns)
    return found


def pack(folder: Path, cap: int, *, source: str = "", since: Manifest | None = None) -> Packed:
    """The files of ``folder`` (with ``since``: only those new or changed since), zipped."""
    files = {
        name: entry
        for name, entry in manifest(folder).items()
        if since is None or since.get(name) != entry
    }
    size = sum(entry[0] for entry in files.values())
    if size > cap:
        raise WorkspaceError(
            f"the workspace holds {format_size(size)} in {len(files)} files, over the "
            f"{format_size(cap)} a cluster carries (config key cluster_workspace_cap)"
        )
    if len(files) > MAX_FILES:
        raise WorkspaceError(f"the workspace holds {len(files)} files, over {MAX_FILES}")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        for name in sorted(files):
            archive.write(folder / name, name)
    data = buffer.getvalue()
    return Packed(source, data, hashlib.sha256(data).hexdigest(), len(files), size)


def unpack(packed: Packed, folder: Path, cap: int) -> Manifest:
    """Check ``packed`` whole, then write its files into ``folder`` (over what is there);
    returns the folder's manifest afterwards."""
    if hashlib.sha256(packed.data).hexdigest() != packed.sha256:
        raise WorkspaceError(
            f"the workspace from {packed.source or 'the daemon'} arrived damaged: its sha256 "
            "is not the one it was sent with"
        )
    try:
        archive = zipfile.ZipFile(io.BytesIO(packed.data))
    except zipfile.BadZipFile as exc:
        raise WorkspaceError(f"the workspace is not a zip toolrun made: {exc}") from None
    with archive:
        members = archive.infolist()
        if len(members) > MAX_FILES:
            raise WorkspaceError(f"the workspace holds {len(members)} files, over {MAX_FILES}")
        declared = 0
        for member in members:
            check_member(member.filename)
            declared += member.file_size
        if declared > cap:
            raise WorkspaceError(
                f"the workspace would unpack to {format_size(declared)}, over the "
                f"{format_size(cap)} a cluster carries"
            )
        folder.mkdir(parents=True, exist_ok=True)
        for member in members:
            if member.is_dir():
                continue
            try:
                _extract(archive, member, folder / member.filename)
            except (zipfile.BadZipFile, zlib.error, EOFError) as exc:
                raise WorkspaceError(f"{member.filename}: damaged in the archive: {exc}") from None
    return manifest(folder)


def check_member(name: str) -> None:
    path = PurePosixPath(name)
    if (
        not name
        or "\\" in name
        or "\x00" in name
        or path.is_absolute()
        or ".." in path.parts
        or (path.parts and ":" in path.parts[0])  # C:, a drive on Windows
    ):
        raise WorkspaceError(f"the workspace holds a path toolrun never writes: {name[:80]!r}")


def _extract(archive: zipfile.ZipFile, member: zipfile.ZipInfo, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.is_symlink():
        target.unlink()  # never written through
    written = 0
    with archive.open(member) as source, target.open("wb") as out:
        while block := source.read(CHUNK):
            written += len(block)
            if written > member.file_size:  # a size that lies: a bomb
                raise WorkspaceError(f"{member.filename}: more bytes than the archive declares")
            out.write(block)
