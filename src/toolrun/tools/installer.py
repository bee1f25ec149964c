"""Installed tools: ``<data>/tools/<name>/<version>/``, each complete or absent.

An install fetches into a staging folder on the same volume, checks every file's sha256 against
the manifest, writes the receipt last and renames the folder into place, all under a
per-version file lock. A version without a receipt was never installed, whatever is on disk.

It stays whole: install, remove and the integrity checks are one protocol over one folder
layout: the receipt ``install`` writes (with each file's size and time) is what
``check_intact`` reads back, under the same lock and staging folder.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import stat
import time
from collections.abc import Iterator
from pathlib import Path

from ..errors import IntegrityError, NotFoundError, StorageError
from ..records import record
from .manifest import (
    MANIFEST_NAME,
    Manifest,
    is_generated,
    load_manifest,
    manifest_from_receipt,
    manifest_to_dict,
)
from .versions import is_tool_name, is_version, sorted_versions
from .watching import QUIET, Watch

# `typing` costs milliseconds at start-up; annotations alone never need it at run time.
TYPE_CHECKING = False

if TYPE_CHECKING:
    from typing import Any

    from .registry import Registry

RECEIPT_NAME = ".toolrun-receipt.json"
LOCK_TIMEOUT = 600.0


@record(frozen=True)
class InstalledTool:
    """A tool version in the tools folder."""

    name: str
    version: str
    path: Path
    manifest: Manifest
    source: str
    installed_at: float
    archive_sha256: str | None = None
    # Each file's size and modification time (ns) as installed: a cheap look before every
    # run tells whether one changed (see Installer.check_intact).
    stats: dict[str, tuple[int, int]] | None = None

    @property
    def spec(self) -> str:
        return f"{self.name}=={self.version}"


@record(frozen=True)
class InstallResult:
    """An installed tool, and whether it was there already."""

    tool: InstalledTool
    already_installed: bool


class Installer:
    def __init__(self, tools_dir: Path) -> None:
        self.tools_dir = tools_dir
        self.watch: Watch = QUIET  # told of each download (the CLI's progress bar)
        # A receipt read, kept while its file is the same one (inode, size, time): a daemon
        # resolves the same tool for every run, and parsing its receipt again cost 6% of a
        # `/cmd` run's CPU (issue 16). A reinstall renames a new folder in: a new inode.
        self._read: dict[str, tuple[tuple[int, int, int], InstalledTool]] = {}

    # -- reading -----------------------------------------------------------------------------

    def names(self) -> list[str]:
        try:
            entries = os.scandir(self.tools_dir)
        except FileNotFoundError:
            return []
        with entries:
            return sorted(e.name for e in entries if e.is_dir() and is_tool_name(e.name))

    def versions(self, name: str) -> list[str]:
        try:
            entries = list(os.scandir(self.tools_dir / name))
        except (FileNotFoundError, NotADirectoryError):
            return []
        return sorted_versions(
            e.name
            for e in entries
            if is_version(e.name) and os.path.exists(os.path.join(e.path, RECEIPT_NAME))
        )

    def get(self, name: str, version: str) -> InstalledTool | None:
        # Plain strings rather than pathlib here: `tool list` reads hundreds of receipts.
        folder = os.path.join(self.tools_dir, name, version)
        receipt_path = os.path.join(folder, RECEIPT_NAME)
        try:
            with open(receipt_path, encoding="utf-8") as file:
                info = os.fstat(file.fileno())
                identity = (info.st_ino, info.st_size, info.st_mtime_ns)
                kept = self._read.get(receipt_path)
                if kept is not None and kept[0] == identity:
                    return kept[1]
                receipt = json.load(file)
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise StorageError(f"{receipt_path}: unreadable receipt: {exc}") from None
        tool = self._tool(name, version, folder, receipt_path, receipt)
        self._read[receipt_path] = (identity, tool)
        return tool

    def _tool(
        self, name: str, version: str, folder: str, receipt_path: str, receipt: Any
    ) -> InstalledTool:
        try:
            return InstalledTool(
                name=name,
                version=version,
                path=Path(folder),
                manifest=manifest_from_receipt(receipt["manifest"]),
                source=str(receipt.get("source", "")),
                installed_at=float(receipt.get("installed_at", 0)),
                archive_sha256=receipt.get("archive_sha256"),
                stats=_stats_from(receipt.get("stats")),
            )
        except (KeyError, TypeError, ValueError, AttributeError):
            # Only a hand edit or a damaged disk makes a receipt toolrun wrote unreadable.
            raise StorageError(
                f"{receipt_path}: damaged receipt",
                hint=f"reinstall: toolrun tool remove {name}@{version} && "
                f"toolrun tool install {name}=={version}",
            ) from None

    def installed(self, damaged: list[StorageError] | None = None) -> list[InstalledTool]:
        """Every installed version. One whose receipt cannot be read is left out and, when
        ``damaged`` is given, its error added there; otherwise that error is raised."""
        tools = []
        for name in self.names():
            for version in self.versions(name):
                try:
                    tool = self.get(name, version)
                except StorageError as error:
                    if damaged is None:
                        raise
                    damaged.append(error)
                    continue
                if tool is not None:
                    tools.append(tool)
        return tools

    # -- changing ----------------------------------------------------------------------------

    def install(self, registry: Registry, name: str, version: str) -> InstallResult:
        existing = self.get(name, version)
        if existing is not None:
            return InstallResult(existing, already_installed=True)
        with self._locked(name, version):
            # Another process may have finished this very install while we waited.
            existing = self.get(name, version)
            if existing is not None:
                return InstallResult(existing, already_installed=True)
            staging: Path | None = None
            try:
                self._remove_stale_staging(name, version)
                staging = self._staging_dir(name, version)
                fetched = registry.fetch(name, version, staging, self.watch)
                manifest = verify_folder(
                    staging,
                    expected_name=name,
                    expected_version=version,
                    hashes=fetched.hashes,
                    origin=fetched.origin,
                )
                archive_sha256 = fetched.archive_sha256
                receipt = {
                    "name": name,
                    "version": version,
                    "source": f"{registry.name} ({registry.location})",
                    "installed_at": time.time(),
                    "archive_sha256": archive_sha256,
                    "manifest": manifest_to_dict(manifest),
                    "stats": file_stats(staging, manifest),
                }
                _write_receipt(staging, receipt)
                target = self.tools_dir / name / version
                if target.exists():
                    # A folder without a receipt is debris, never an install: replace it.
                    _remove_tree(target, self._trash_dir(name, version))
                target.parent.mkdir(parents=True, exist_ok=True)
                os.replace(staging, target)
            except OSError as exc:
                raise storage_error(exc, f"installing {name} {version}") from None
            finally:
                if staging is not None and staging.exists():
                    import shutil

                    shutil.rmtree(staging, ignore_errors=True)
        tool = self.get(name, version)
        assert tool is not None
        return InstallResult(tool, already_installed=False)

    def remove(self, name: str, version: str) -> None:
        with self._locked(name, version):
            target = self.tools_dir / name / version
            if not (target / RECEIPT_NAME).exists():
                raise NotFoundError(f"{name} {version} is not installed")
            try:
                # The receipt goes first, so a removal cut short leaves no half-tool listed.
                (target / RECEIPT_NAME).unlink()
                _remove_tree(target, self._trash_dir(name, version))
                with contextlib.suppress(OSError):
                    (self.tools_dir / name).rmdir()
            except OSError as exc:
                raise storage_error(exc, f"removing {name} {version}") from None

    def check_intact(self, tool: InstalledTool) -> None:
        """Refuse a tool whose files changed since it was installed (IntegrityError naming
        the file): each file's size and modification time against the receipt, re-hashed
        only when they differ, and no file added beside them. Cheap enough for every run."""
        if tool.manifest.is_system:
            return
        stats = tool.stats or {}
        rehashed = False
        for relative, expected in tool.manifest.files.items():
            path = tool.path / relative
            try:
                info = path.lstat()
            except OSError:
                raise self._changed(tool, relative, "is missing") from None
            if not stat.S_ISREG(info.st_mode):
                raise self._changed(tool, relative, "is no longer a plain file")
            if stats.get(relative) == (info.st_size, info.st_mtime_ns):
                continue
            from .archives import sha256_file

            if sha256_file(path) != expected.lower():
                raise self._changed(tool, relative, "was changed after it was installed")
            rehashed = True
        for extra in _extra_files(tool.path, tool.manifest):
            raise self._changed(tool, extra, "was added after it was installed")
        if rehashed:
            # All there as installed: remember what the files look like now (a copy that kept
            # its contents but not its times, a receipt from before stats were kept).
            with contextlib.suppress(OSError, ValueError):
                receipt_path = tool.path / RECEIPT_NAME
                receipt = json.loads(receipt_path.read_text(encoding="utf-8"))
                receipt["stats"] = file_stats(tool.path, tool.manifest)
                _write_receipt(tool.path, receipt)

    def _changed(self, tool: InstalledTool, relative: str, what: str) -> IntegrityError:
        return IntegrityError(
            f"{tool.path / relative}: {what}; {tool.name} {tool.version} is refused until "
            f"reinstalled (toolrun tool remove {tool.name}@{tool.version} && "
            f"toolrun tool install {tool.name}=={tool.version})"
        )

    def verify(self, tool: InstalledTool) -> list[str]:
        """The problems found re-hashing ``tool``'s files; empty when all is well."""
        return folder_problems(tool.path, tool.manifest, ignore=frozenset({RECEIPT_NAME}))

    # -- internals ---------------------------------------------------------------------------

    @contextlib.contextmanager
    def _locked(self, name: str, version: str) -> Iterator[None]:
        import filelock

        locks = self.tools_dir / ".locks"
        try:
            locks.mkdir(parents=True, exist_ok=True)
            lock = filelock.FileLock(locks / f"{name}@{version}.lock", timeout=LOCK_TIMEOUT)
            with lock:
                yield
        except filelock.Timeout:
            raise StorageError(
                f"{name} {version}: another toolrun held the install lock for {LOCK_TIMEOUT:g}s"
            ) from None
        except OSError as exc:
            raise storage_error(exc, f"locking {name} {version}") from None

    def _staging_root(self) -> Path:
        return self.tools_dir / ".staging"

    def _staging_dir(self, name: str, version: str) -> Path:
        import uuid

        root = self._staging_root()
        root.mkdir(parents=True, exist_ok=True)
        return root / f"{name}@{version}-{os.getpid()}-{uuid.uuid4().hex[:8]}"

    def _trash_dir(self, name: str, version: str) -> Path:
        import uuid

        root = self._staging_root()
        root.mkdir(parents=True, exist_ok=True)
        return root / f"{name}@{version}-removed-{uuid.uuid4().hex[:8]}"

    def _remove_stale_staging(self, name: str, version: str) -> None:
        """What installs that died left in the staging folder: this version's (its lock is
        held, so any is a dead install's), and every other whose process is gone, so a
        kill -9 mid-download costs no disk beyond the next install of anything."""
        root = self._staging_root()
        if not root.is_dir():
            return
        import re
        import shutil

        from ..executors.processes import process_start_time

        for entry in root.iterdir():
            match = re.search(r"-(\d+)-[0-9a-f]{8}(?:\.|$)", entry.name)
            if entry.name.startswith(f"{name}@{version}-"):
                stale = True
            elif "-removed-" in entry.name:  # a removal's trash: its process deletes it at once
                stale = time.time() - _mtime(entry) > STALE_TRASH_SECONDS
            else:
                stale = match is not None and process_start_time(int(match[1])) is None
            if stale:
                shutil.rmtree(entry, ignore_errors=True)
                with contextlib.suppress(OSError):
                    entry.unlink()


STALE_TRASH_SECONDS = 3600


def _mtime(path: Path) -> float:
    try:
        return path.lstat().st_mtime
    except OSError:
        return time.time()


def verify_folder(
    folder: Path,
    *,
    expected_name: str,
    expected_version: str,
    hashes: dict[str, str] | None = None,
    origin: str | None = None,
) -> Manifest:
    """Load ``folder``'s manifest and check it names the expected tool and every file's hash."""
    # A registry's own name for the file (a folder path, or archive.zip!/tool.toml) means
    # more to its author than the staging copy does.
    where = f"{origin}/{MANIFEST_NAME}" if origin else str(folder / MANIFEST_NAME)
    manifest = load_manifest(folder / MANIFEST_NAME, source=where)
    if (manifest.name, manifest.version) != (expected_name, expected_version):
        raise IntegrityError(
            f"{where}: describes {manifest.name} {manifest.version}, "
            f"but it was published as {expected_name} {expected_version}"
        )
    problems = folder_problems(folder, manifest, hashes=hashes)
    if problems:
        raise IntegrityError(
            f"{expected_name} {expected_version}: " + "; ".join(problems) + "; nothing installed"
        )
    return manifest


def folder_problems(
    folder: Path,
    manifest: Manifest,
    *,
    ignore: frozenset[str] = frozenset(),
    hashes: dict[str, str] | None = None,
) -> list[str]:
    """Missing, changed, linked and unlisted files; ``hashes`` saves reading files again."""
    present = {
        relative
        for path in folder.rglob("*")
        if (not path.is_dir() or path.is_symlink())
        and not is_generated(relative := path.relative_to(folder).as_posix())
    }
    present -= {MANIFEST_NAME, *ignore}
    from .archives import sha256_file

    problems = []
    for relative, expected in sorted(manifest.files.items()):
        path = folder / relative
        if relative not in present:
            problems.append(f"{relative} is missing")
            continue
        if path.is_symlink():
            problems.append(f"{relative} is a symbolic link")
            continue
        known = hashes.get(relative) if hashes else None
        actual = known or sha256_file(path)
        if actual != expected.lower():
            problems.append(f"{relative}: sha256 mismatch: expected {expected}, got {actual}")
    for extra in sorted(present - set(manifest.files)):
        problems.append(f"{extra} is not listed in the manifest's [files]")
    return problems


def _write_receipt(folder: Path, receipt: dict[str, object]) -> None:
    path = folder / RECEIPT_NAME
    temporary = folder / f"{RECEIPT_NAME}.{os.getpid()}.tmp"
    with temporary.open("w", encoding="utf-8") as file:
        json.dump(receipt, file, indent=2)
        file.flush()
        os.fsync(file.fileno())
    os.replace(temporary, path)


def file_stats(folder: Path, manifest: Manifest) -> dict[str, list[int]]:
    """Each listed file's size and modification time (ns), for the receipt."""
    stats = {}
    for relative in manifest.files:
        info = (folder / relative).lstat()
        stats[relative] = [info.st_size, info.st_mtime_ns]
    return stats


def _stats_from(raw: object) -> dict[str, tuple[int, int]] | None:
    if not isinstance(raw, dict):
        return None
    return {
        str(k): (int(v[0]), int(v[1]))
        for k, v in raw.items()
        if isinstance(v, list) and len(v) == 2
    }


def _extra_files(folder: Path, manifest: Manifest) -> list[str]:
    """Files in an installed tool's folder that it was not installed with."""
    known = {*manifest.files, MANIFEST_NAME, RECEIPT_NAME}
    extra = []
    for root, _dirs, files in os.walk(folder):
        # A __pycache__ counts too: Python would run its byte code instead of the checked
        # sources, and toolrun never writes one there (PYTHONDONTWRITEBYTECODE).
        base = Path(root).relative_to(folder).as_posix()
        for name in files:
            relative = name if base == "." else f"{base}/{name}"
            if relative not in known and not (
                relative.startswith(RECEIPT_NAME) and relative.endswith(".tmp")
            ):
                extra.append(relative)
    return extra


def _remove_tree(target: Path, trash: Path) -> None:
    # Renaming first makes the folder vanish at once; deleting its files can take a while.
    import shutil

    os.replace(target, trash)
    shutil.rmtree(trash, ignore_errors=True)


def storage_error(exc: OSError, doing: str) -> StorageError:
    """A StorageError a user can act on, naming the file and the cause."""
    reasons = {
        errno.EROFS: "the data dir is on a read-only file system",
        errno.ENOSPC: "the disk is full",
        errno.EDQUOT: "the disk quota is exhausted",
        errno.EACCES: "permission denied",
        errno.EPERM: "permission denied",
    }
    reason = reasons.get(exc.errno or 0, exc.strerror or str(exc))
    where = f" ({exc.filename})" if exc.filename else ""
    return StorageError(f"{doing}: {reason}{where}")
