"""``/registry/``: the daemon's installed tools as a static HTTP tree, for its workers.

The tree has the format ``toolrun registry build`` writes (``index.json`` and one zip per
version), made from the very files the daemon resolved a run's tools to, so a worker that
installs from it runs what the daemon planned: the run's recorded digest (``tool_digest``)
is of those files. Each zip is written once per version and digest, under the cache folder.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

from .. import __version__
from ..errors import NotFoundError
from ..tools.archives import sha256_file, write_zip
from ..tools.installer import Installer
from ..tools.manifest import MANIFEST_NAME
from ..tools.registry import INDEX_NAME, ArchiveEntry, index_to_json


class ServedTree:
    def __init__(self, installer: Installer, cache_dir: Path) -> None:
        self.installer = installer
        self.root = cache_dir / "served-registry"
        self._lock = threading.Lock()
        self._archives: dict[str, Path] = {}  # relative path in the tree -> zip

    def index(self) -> bytes:
        from ..runs.engine import tool_digest

        with self._lock:
            tools: dict[str, dict[str, ArchiveEntry]] = {}
            archives: dict[str, Path] = {}
            for tool in self.installer.installed():
                try:
                    self.installer.check_intact(tool)
                except Exception:
                    continue  # a damaged copy is not offered: the worker's install would fail
                digest = tool_digest(tool)[:16]
                relative = f"{tool.name}/{tool.name}-{tool.version}-{digest}.zip"
                archive = self.root / relative
                files = [MANIFEST_NAME, *tool.manifest.files]
                if not archive.is_file():
                    archive.parent.mkdir(parents=True, exist_ok=True)
                    temporary = archive.with_suffix(f".{os.getpid()}.tmp")
                    write_zip(tool.path, files, temporary)
                    os.replace(temporary, archive)
                tools.setdefault(tool.name, {})[tool.version] = ArchiveEntry(
                    archive=relative,
                    sha256=sha256_file(archive),
                    size=archive.stat().st_size,
                    description=tool.manifest.description,
                    kind=tool.manifest.kind,
                    unpacked=sum((tool.path / f).stat().st_size for f in files),
                )
                archives[relative] = archive
            self._archives = archives
            return index_to_json(tools, f"toolrun {__version__} daemon").encode()

    def archive(self, relative: str) -> Path:
        """A zip the last index listed; anything else is not in the tree."""
        if relative not in self._archives:
            self.index()
        found = self._archives.get(relative)
        if found is None or not found.is_file():
            raise NotFoundError(f"/registry/{relative[:80]}: not in the daemon's registry")
        return found


def is_index(path: str) -> bool:
    return path in ("", INDEX_NAME)
