"""An HTTP registry's index kept on disk (tools/index_cache.py): what is saved comes back, a
damaged or foreign file is no copy at all, and a reader never sees half a file."""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

from toolrun.tools.index_cache import IndexCache, IndexCopy

URL = "https://registry.example/tools/"
INDEX = {"tools": {"uexp": {"0.1.0": {"sha256": "a" * 64}}}}


def test_a_saved_copy_comes_back_with_its_validators(tmp_path: Path) -> None:
    cache = IndexCache(tmp_path / "cache")
    cache.save(URL, IndexCopy(INDEX, time.time() - 30, etag='"v1"', last_modified="Tue"))
    copy = cache.load(URL)
    assert copy is not None and copy.data == INDEX
    assert 29 < copy.age() < 40
    assert copy.validators() == {"If-None-Match": '"v1"', "If-Modified-Since": "Tue"}
    assert IndexCopy(INDEX, time.time()).validators() == {}


def test_each_url_has_a_file_of_its_own(tmp_path: Path) -> None:
    cache = IndexCache(tmp_path)
    other = "https://registry.example/other/"
    cache.save(URL, IndexCopy(INDEX, 1.0))
    cache.save(other, IndexCopy({"tools": {}}, 2.0))
    assert cache.path_for(URL) != cache.path_for(other)
    first, second = cache.load(URL), cache.load(other)
    assert first is not None and first.checked_at == 1.0
    assert second is not None and second.data == {"tools": {}}
    assert cache.load("https://registry.example/never/") is None


def test_damaged_or_foreign_files_are_no_copy(tmp_path: Path) -> None:
    cache = IndexCache(tmp_path)
    path = cache.path_for(URL)
    for text in (
        "{not json",
        "[]",
        json.dumps({"url": URL}),  # no index, no time
        json.dumps({"url": URL, "index": INDEX, "checked_at": "soon"}),
        json.dumps({"url": "https://elsewhere.example/", "index": INDEX, "checked_at": 1}),
    ):
        path.write_text(text)
        assert cache.load(URL) is None, text


def test_a_cache_that_cannot_be_written_is_not_an_error(tmp_path: Path) -> None:
    blocked = tmp_path / "file"
    blocked.write_text("a file where the cache folder should be")
    cache = IndexCache(blocked / "cache")
    cache.save(URL, IndexCopy(INDEX, 1.0))  # no exception
    assert cache.load(URL) is None
    (tmp_path / "ok").mkdir()
    cache = IndexCache(tmp_path / "ok")
    cache.save(URL, IndexCopy({"when": object()}, 1.0))  # not JSON: skipped, nothing left
    assert list((tmp_path / "ok").iterdir()) == []


def test_a_reader_sees_the_old_copy_or_the_new_never_half(tmp_path: Path) -> None:
    cache = IndexCache(tmp_path)
    big = {"tools": {f"t{i}": {"1.0.0": {"sha256": "b" * 64}} for i in range(3000)}}
    cache.save(URL, IndexCopy(big, 1.0))
    seen: list[float] = []
    done = threading.Event()

    def read() -> None:
        while not done.is_set():
            copy = cache.load(URL)
            assert copy is not None  # a half-written file would read as None
            seen.append(copy.checked_at)

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for when in range(2, 40):
            cache.save(URL, IndexCopy(big, float(when)))
    finally:
        done.set()
        reader.join()
    assert seen and set(seen) <= {float(w) for w in range(1, 40)}
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]
