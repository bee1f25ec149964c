"""Structured logs: one JSON object per line for every request and every run transition.

Written to stderr, and to a file when asked. Never holds a token: requests are logged by
method, path, status and the caller's name, not by their headers.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from pathlib import Path
from typing import IO, Any

from ..errors import StorageError


class Journal:
    def __init__(self, path: Path | None = None, *, stream: IO[str] | None = None) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.file = None
        if path is not None:
            try:
                self.file = path.open("a", encoding="utf-8", buffering=1)
            except OSError as exc:
                raise StorageError(f"--log-file {path}: {exc.strerror}") from None

    def write(self, event: str, **fields: Any) -> None:
        record = {"ts": round(time.time(), 3), "event": event, **fields}
        line = json.dumps(record, ensure_ascii=False, separators=(",", ":"), default=str) + "\n"
        try:
            self.stream.write(line)
            self.stream.flush()
            if self.file is not None:
                self.file.write(line)
        except (OSError, ValueError):
            pass  # a closed stderr must not take the daemon down with it

    def close(self) -> None:
        if self.file is not None:
            self.file.close()


class JournalHandler(logging.Handler):
    """uvicorn's own warnings (a malformed request, a failed TLS handshake) as JSON lines too."""

    def __init__(self, journal: Journal) -> None:
        super().__init__(logging.INFO)
        self.journal = journal

    def emit(self, record: logging.LogRecord) -> None:
        fields: dict[str, Any] = {}
        if record.exc_info and record.exc_info[1] is not None:
            # An error the app did not turn into an answer (a 500): what and where, for a fix.
            import traceback

            fields["error"] = repr(record.exc_info[1])
            fields["traceback"] = "".join(traceback.format_exception(*record.exc_info))
        self.journal.write(
            "server", level=record.levelname.lower(), message=record.getMessage(), **fields
        )
