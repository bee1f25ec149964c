"""An HTTP registry's index kept on disk, so that a run does not download it every time.

A copy the registry confirmed less than ``registry_cache`` seconds ago is used as it is. An
older one is checked with a conditional GET (``If-None-Match``/``If-Modified-Since``): when
the index has not changed, the registry answers 304 and nothing more is downloaded.
"""

from __future__ import annotations

import time
from pathlib import Path

from ..cache_files import read_json, write_json
from ..digests import sha256_hex
from ..records import record

# `typing` costs milliseconds at start-up; annotations alone never need it at run time.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


@record
class IndexCopy:
    """A registry's index as last received, with what a conditional GET needs."""

    data: Any  # the parsed JSON of index.json
    checked_at: float  # when the registry last sent or confirmed it (seconds since the epoch)
    etag: str | None = None
    last_modified: str | None = None

    def age(self) -> float:
        return time.time() - self.checked_at

    def validators(self) -> dict[str, str]:
        """The headers that ask the registry to answer 304 when nothing changed."""
        headers = {}
        if self.etag:
            headers["If-None-Match"] = self.etag
        if self.last_modified:
            headers["If-Modified-Since"] = self.last_modified
        return headers


class IndexCache:
    """One JSON file per registry URL under ``folder``."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def path_for(self, url: str) -> Path:
        return self.folder / f"{sha256_hex(url.encode())[:24]}.json"

    def load(self, url: str) -> IndexCopy | None:
        saved = read_json(self.path_for(url))
        try:
            if saved["url"] != url:
                return None
            return IndexCopy(
                data=saved["index"],
                checked_at=float(saved["checked_at"]),
                etag=saved.get("etag"),
                last_modified=saved.get("last_modified"),
            )
        except (KeyError, TypeError, ValueError):
            return None

    def save(self, url: str, copy: IndexCopy) -> None:
        saved = {
            "url": url,
            "checked_at": copy.checked_at,
            "etag": copy.etag,
            "last_modified": copy.last_modified,
            "index": copy.data,
        }
        write_json(self.path_for(url), saved)
