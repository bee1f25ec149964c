"""The daemon's structured log (daemon/journal.py): one JSON object a line, to stderr and a file,
never a token, and never the daemon's end when stderr is gone."""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path

import pytest

from toolrun.daemon.journal import Journal, JournalHandler
from toolrun.errors import StorageError


def test_each_event_is_one_json_line_on_the_stream_and_in_the_file(tmp_path: Path) -> None:
    stream = io.StringIO()
    journal = Journal(tmp_path / "daemon.log", stream=stream)
    journal.write("request", method="GET", path="/cmd/转表", status=200, took=Path("/x"))
    journal.write("run", id="r1", status="succeeded")
    journal.close()
    lines = stream.getvalue().splitlines()
    assert lines == (tmp_path / "daemon.log").read_text(encoding="utf-8").splitlines()
    first, second = (json.loads(line) for line in lines)
    assert first["event"] == "request" and first["path"] == "/cmd/转表"  # not \\u-escaped
    assert "转表" in lines[0]
    assert first["took"] == "/x"  # what JSON cannot hold is written as text, not dropped
    assert isinstance(first["ts"], float) and second["status"] == "succeeded"


def test_a_file_is_appended_to_not_overwritten(tmp_path: Path) -> None:
    path = tmp_path / "daemon.log"
    path.write_text('{"event":"earlier"}\n', encoding="utf-8")
    journal = Journal(path, stream=io.StringIO())
    journal.write("started")
    journal.close()
    assert [json.loads(line)["event"] for line in path.read_text().splitlines()] == [
        "earlier",
        "started",
    ]


def test_an_unwritable_log_file_is_a_storage_error_naming_it(tmp_path: Path) -> None:
    with pytest.raises(StorageError) as caught:
        Journal(tmp_path / "missing" / "daemon.log", stream=io.StringIO())
    assert "--log-file" in caught.value.message and "missing" in caught.value.message


def test_a_closed_stderr_does_not_take_the_daemon_down() -> None:
    stream = io.StringIO()
    stream.close()
    Journal(stream=stream).write("request", status=200)  # no exception


def test_uvicorns_own_records_become_server_events_with_the_error() -> None:
    stream = io.StringIO()
    handler = JournalHandler(Journal(stream=stream))
    logger = logging.getLogger("toolrun-journal-test")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning("Invalid HTTP request received.")
        try:
            raise RuntimeError("boom")
        except RuntimeError:
            logger.exception("Exception in ASGI application")
    finally:
        logger.removeHandler(handler)
    warning, error = (json.loads(line) for line in stream.getvalue().splitlines())
    assert warning == {
        "ts": warning["ts"],
        "event": "server",
        "level": "warning",
        "message": "Invalid HTTP request received.",
    }
    assert error["level"] == "error" and error["error"] == "RuntimeError('boom')"
    assert 'raise RuntimeError("boom")' in error["traceback"]
