"""Where tools come from: a folder ``<name>/<version>/tool.toml`` or a static HTTP tree.

A registry lists tool names and versions and fetches one version's files into a staging
folder; checking those files is the installer's job, the same for every kind of registry.

The HTTP registry is toolrun's one use of the standard library's HTTP client (everything else
that speaks HTTP, the remote CLI and the tests, uses httpx). It stays for start-up: `toolrun
exec` and `tool install` against an HTTP registry import `urllib.request` in 47 ms here where
`httpx` takes 141–153 ms (``-X importtime``, 2026-12-03, the machine under load), and plain
GETs of static files need nothing more.

It stays whole: the ``Registry`` contract, its two kinds, and the ``index.json`` format that
``publish.py`` writes and ``HttpRegistry`` reads are one interface, read together.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from urllib.parse import urljoin

from ..config import Config, RegistryRef
from ..errors import ConfigError, IntegrityError, RegistryUnavailable
from ..records import record
from .manifest import MANIFEST_NAME, is_generated
from .versions import is_tool_name, is_version, sorted_versions
from .watching import QUIET, Watch

# `typing` costs milliseconds at start-up; annotations alone never need it at run time.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Protocol

    from .index_cache import IndexCache, IndexCopy

INDEX_NAME = "index.json"
INDEX_FORMAT = 1


DEFAULT_MAX_UNPACKED = 2 * 1024**3  # bytes a tool version's archive may unpack to


@record(frozen=True)
class ArchiveEntry:
    """One tool version in an HTTP registry's index."""

    archive: str  # relative to the index
    sha256: str
    size: int
    description: str = ""
    kind: str = "bundled"
    unpacked: int | None = None  # bytes its files take once unpacked (indexes since 0.1)


@record(frozen=True)
class Fetched:
    """What a fetch put in the staging folder: the archive's sha256 (HTTP registries) and
    each file's sha256 as computed while writing it, so files are not read a second time."""

    archive_sha256: str | None
    hashes: dict[str, str]
    origin: str  # where the files came from, for messages: a folder or an archive's URL


# A protocol for the type checker only: at run time it would import typing for nothing.
if TYPE_CHECKING:

    class Registry(Protocol):
        name: str
        location: str
        is_local: bool  # answers from this machine's disk, as quickly as reading a file

        def tool_names(self) -> list[str]: ...

        def versions(self, tool: str) -> list[str]: ...

        def refresh(self) -> bool:
            """Ask the registry itself at the next look, whatever copy is in hand; True when
            that will make a difference (an HTTP registry)."""
            ...

        def fetch(self, tool: str, version: str, staging: Path, watch: Watch = QUIET) -> Fetched:
            """Put the version's files in ``staging``, telling ``watch`` how it goes."""
            ...


class FolderRegistry:
    is_local = True

    def __init__(self, name: str, root: Path) -> None:
        self.name = name
        self.root = root
        self.location = str(root)

    def tool_names(self) -> list[str]:
        if not self.root.is_dir():
            raise RegistryUnavailable(f"registry {self.name!r}: {self.root} is not a folder")
        return sorted(
            entry.name
            for entry in os.scandir(self.root)
            if entry.is_dir() and is_tool_name(entry.name) and not entry.name.startswith(".")
        )

    def versions(self, tool: str) -> list[str]:
        folder = self.root / tool
        try:
            entries = list(os.scandir(folder))
        except (FileNotFoundError, NotADirectoryError):
            return []
        return sorted_versions(
            entry.name
            for entry in entries
            if is_version(entry.name) and os.path.isfile(os.path.join(entry.path, MANIFEST_NAME))
        )

    def refresh(self) -> bool:
        return False  # every look reads the folder

    def version_dir(self, tool: str, version: str) -> Path:
        return self.root / tool / version

    def fetch(self, tool: str, version: str, staging: Path, watch: Watch = QUIET) -> Fetched:
        import shutil

        from .archives import copy_hashing

        source = self.version_dir(tool, version)
        hashes = {}
        paths = sorted(source.rglob("*"))
        watch.begin(f"{tool} {version}", sum(p.stat().st_size for p in paths if p.is_file()))
        # A plain walk rather than shutil.copytree: its errors come bundled in one
        # shutil.Error, and a full disk must surface as the OSError it is.
        for path in paths:
            relative = path.relative_to(source)
            if path.is_symlink():
                raise IntegrityError(f"{path}: registries may not hold symbolic links")
            if is_generated(relative.as_posix()):
                continue
            destination = staging / relative
            if path.is_dir():
                destination.mkdir(parents=True, exist_ok=True)
            else:
                destination.parent.mkdir(parents=True, exist_ok=True)
                with path.open("rb") as file:
                    hashes[relative.as_posix()] = copy_hashing(file, destination)
                shutil.copymode(path, destination)
                watch.advance(destination.stat().st_size)
        watch.end()
        return Fetched(None, hashes, str(source))


class HttpRegistry:
    """A static tree: ``index.json`` plus one archive per tool version.

    Plain GETs of static files need nothing more than the standard library's client, which
    here imports in a third of httpx's time and streams 50 MB in half of it.

    The index is reused for ``max_age`` seconds after the registry last sent or confirmed it,
    from memory (a daemon) or from ``cache`` (one toolrun after another); see index_cache.
    """

    is_local = False

    def __init__(
        self,
        name: str,
        url: str,
        *,
        timeout: float,
        cache: IndexCache | None = None,
        max_age: float = 0.0,
        max_unpacked: int = DEFAULT_MAX_UNPACKED,
        token: str | None = None,
    ) -> None:
        self.name = name
        self.token = token  # sent as a bearer token (a cluster daemon's tree, for its workers)
        self.max_unpacked = max_unpacked
        self.location = url
        self.base = url if url.endswith("/") else url + "/"
        self.index_url = urljoin(self.base, INDEX_NAME)
        self.timeout = timeout
        self.cache = cache
        self.max_age = max_age
        self._copy: IndexCopy | None = None
        self._looked_in_cache = False
        self._must_ask = False
        self._index: dict[str, dict[str, ArchiveEntry]] | None = None

    def _open(self, url: str, headers: dict[str, str] | None = None) -> Any:
        """An open response to ``GET url``, None for 304 Not Modified; failing that,
        RegistryUnavailable."""
        import urllib.request

        from .. import __version__

        headers = {"User-Agent": f"toolrun/{__version__}", **(headers or {})}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        request = urllib.request.Request(url, headers=headers)
        try:
            return urllib.request.urlopen(request, timeout=self.timeout)
        except OSError as exc:  # URLError, HTTPError and timeouts are all OSErrors
            if getattr(exc, "code", None) == 304:
                return None
            raise self._unavailable(url, exc) from None

    def _read(self, response: Any, url: str, size: int = -1) -> bytes:
        try:
            return bytes(response.read(size))
        except OSError as exc:
            raise self._unavailable(url, exc) from None

    def _unavailable(self, url: str, exc: OSError) -> RegistryUnavailable:
        code = getattr(exc, "code", None)
        if code is not None:
            return RegistryUnavailable(f"registry {self.name!r}: GET {url} answered {code}")
        reason = getattr(exc, "reason", exc)
        if isinstance(exc, TimeoutError) or isinstance(reason, TimeoutError):
            return RegistryUnavailable(
                f"registry {self.name!r} ({url}) did not answer within {self.timeout:g}s"
            )
        return RegistryUnavailable(f"registry {self.name!r} ({url}) is unreachable: {reason}")

    def refresh(self) -> bool:
        self._must_ask = True
        return True

    def index(self) -> dict[str, dict[str, ArchiveEntry]]:
        if not self._looked_in_cache and self.cache is not None:
            self._looked_in_cache = True
            self._copy = self.cache.load(self.index_url)
            if self._copy is not None:
                try:
                    self._index = parse_index(self._copy.data, source=self.index_url)
                except ConfigError:  # a copy spoilt on disk: the registry has the real one
                    self._copy = None
        if self._copy is None or self._must_ask or self._copy.age() > self.max_age:
            self._download()
        assert self._index is not None
        return self._index

    def _download(self) -> None:
        """Ask the registry for its index; a conditional GET when there is a copy to check."""
        from .index_cache import IndexCopy

        url = self.index_url
        now = time.time()
        response = self._open(url, self._copy.validators() if self._copy else None)
        self._must_ask = False
        if response is None and self._copy is not None:  # 304: the copy is still right
            self._copy.checked_at = now
        else:
            with response:
                body = self._read(response, url)
                etag = response.headers.get("ETag")
                last_modified = _strong_date(response.headers)
            try:
                data = json.loads(body)
            except ValueError:
                raise ConfigError(f"registry {self.name!r}: {url} is not JSON") from None
            self._index = parse_index(data, source=url)
            self._copy = IndexCopy(data, now, etag, last_modified)
        if self.cache is not None:
            self.cache.save(url, self._copy)

    def tool_names(self) -> list[str]:
        return sorted(self.index())

    def versions(self, tool: str) -> list[str]:
        return sorted_versions(self.index().get(tool, {}))

    def entry(self, tool: str, version: str) -> ArchiveEntry:
        return self.index()[tool][version]

    def fetch(self, tool: str, version: str, staging: Path, watch: Watch = QUIET) -> Fetched:
        from .archives import CHUNK, extract

        entry = self.entry(tool, version)
        url = urljoin(self.base, entry.archive)
        archive_path = staging.parent / f"{staging.name}.{Path(entry.archive).name}"
        import hashlib

        digest = hashlib.sha256()
        size = 0
        watch.begin(f"{tool} {version}", entry.size)
        try:
            with self._open(url) as response, archive_path.open("wb") as file:
                # Hashing while streaming keeps memory flat whatever the archive's size.
                while chunk := self._read(response, url, CHUNK):
                    digest.update(chunk)
                    size += len(chunk)
                    file.write(chunk)
                    watch.advance(len(chunk))
            watch.end()
            if digest.hexdigest() != entry.sha256:
                raise IntegrityError(
                    f"{tool} {version}: archive sha256 mismatch: expected {entry.sha256}, "
                    f"got {digest.hexdigest()} ({url}); nothing was installed"
                )
            if size != entry.size:
                raise IntegrityError(
                    f"{tool} {version}: archive is {size} bytes, the index says {entry.size}"
                )
            staging.mkdir(parents=True, exist_ok=True)
            # What the index says the files take, and never more than the configured ceiling.
            limit = min(entry.unpacked or self.max_unpacked, self.max_unpacked)
            hashes = extract(archive_path, staging, limit=limit)
        finally:
            archive_path.unlink(missing_ok=True)
        return Fetched(entry.sha256, hashes, f"{url}!")


def parse_index(data: Any, *, source: str) -> dict[str, dict[str, ArchiveEntry]]:
    if not isinstance(data, dict) or data.get("format") != INDEX_FORMAT:
        raise ConfigError(f"{source}: not a toolrun registry index (format {INDEX_FORMAT})")
    tools: dict[str, dict[str, ArchiveEntry]] = {}
    for name, tool in (data.get("tools") or {}).items():
        versions = tool.get("versions", {}) if isinstance(tool, dict) else None
        if not is_tool_name(name) or not isinstance(versions, dict):
            raise ConfigError(f"{source}: tools.{name}: malformed entry")
        tools[name] = {}
        for version, raw in versions.items():
            try:
                entry = ArchiveEntry(
                    archive=str(raw["archive"]),
                    sha256=str(raw["sha256"]),
                    size=int(raw["size"]),
                    description=str(raw.get("description", "")),
                    kind=str(raw.get("kind", "bundled")),
                    unpacked=int(raw["unpacked_size"]) if "unpacked_size" in raw else None,
                )
            except (KeyError, TypeError, ValueError):
                raise ConfigError(
                    f"{source}: tools.{name}.versions.{version}: needs archive, sha256 and size"
                ) from None
            if not is_version(version):
                raise ConfigError(f"{source}: tools.{name}: {version!r} is not a version")
            if entry.archive.startswith("/") or ".." in entry.archive.split("/"):
                raise ConfigError(f"{source}: tools.{name}.{version}: archive must be relative")
            tools[name][version] = entry
    return tools


def index_to_json(tools: dict[str, dict[str, ArchiveEntry]], generator: str) -> str:
    data = {
        "format": INDEX_FORMAT,
        "generator": generator,
        "tools": {
            name: {
                "versions": {
                    version: {
                        "archive": e.archive,
                        "sha256": e.sha256,
                        "size": e.size,
                        "description": e.description,
                        "kind": e.kind,
                        **({"unpacked_size": e.unpacked} if e.unpacked is not None else {}),
                    }
                    for version, e in versions.items()
                }
            }
            for name, versions in sorted(tools.items())
        },
    }
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


def registries_from_config(
    config: Config, *, cwd: Path, cache_dir: Path | None = None
) -> list[Registry]:
    """The configured registries in order, then ``./registry`` when it exists. HTTP
    registries keep their index under ``cache_dir`` when one is given."""
    registries: list[Registry] = [
        open_registry(ref, config, cache_dir=cache_dir) for ref in config.registries
    ]
    local = cwd / "registry"
    already = any(isinstance(r, FolderRegistry) and r.root == local for r in registries)
    if config.get("cwd_registry") and local.is_dir() and not already:
        registries.append(FolderRegistry("./registry", local))
    return registries


def open_registry(ref: RegistryRef, config: Config, *, cache_dir: Path | None = None) -> Registry:
    if ref.is_http:
        from .index_cache import IndexCache

        return HttpRegistry(
            ref.name,
            ref.location,
            timeout=config.registry_timeout,
            cache=IndexCache(cache_dir / "registries") if cache_dir is not None else None,
            max_age=float(config.get("registry_cache")),
            max_unpacked=int(config.get("max_unpacked")),
        )
    location = ref.location.removeprefix("file://")
    root = Path(location).expanduser()
    if not root.is_absolute():
        # Relative folders in config.toml mean relative to the config file.
        root = config.path.parent / root
    return FolderRegistry(ref.name, root)


def _strong_date(headers: Any) -> str | None:
    """The response's Last-Modified, if it can tell a later change from this one.

    Dates count whole seconds: an index sent in the second it was written may be rewritten
    within that second, and asked "modified since?" the registry would answer 304 with the
    old copy kept. Such a date is not sent back (RFC 9110 calls it weak); the next check is a
    plain GET.
    """
    from email.utils import parsedate_to_datetime

    last_modified, sent = headers.get("Last-Modified"), headers.get("Date")
    try:
        if last_modified and sent:
            age = parsedate_to_datetime(sent) - parsedate_to_datetime(last_modified)
            if age.total_seconds() >= 1:
                return str(last_modified)
    except (TypeError, ValueError):
        pass
    return None
