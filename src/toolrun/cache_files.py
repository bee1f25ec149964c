"""Files under the cache folder: JSON written whole and then renamed, so a toolrun reading at
the same time sees the old file or the new one, never half of one. A cache file that cannot be
read or written is never an error; it only saves time."""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

# `typing` costs milliseconds at start-up; annotations alone never need it at run time.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def read_json(path: Path) -> Any:
    """The file's JSON, or None when it is missing or unreadable."""
    try:
        return json.loads(path.read_bytes())
    except (OSError, ValueError):
        return None


def write_json(path: Path, data: Any) -> None:
    temporary = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    try:
        text = json.dumps(data)
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary.write_text(text, encoding="utf-8")
        os.replace(temporary, path)
    except (OSError, TypeError, ValueError):  # TypeError: a TOML date, which JSON cannot hold
        with contextlib.suppress(OSError):
            temporary.unlink()
