from __future__ import annotations

import time
from pathlib import Path

import pytest

from toolrun.errors import NotFoundError
from toolrun.store import BACKGROUND_DELETE, HistoryQuery, Store, check_run_id


def finished_run(store: Store) -> str:
    record, owner = store.create_run(toolchain="t", params={}, steps=[("a", "probe", "probe")])
    store.update_run(record.id, status="succeeded", finished_at=time.time())
    owner.release()
    return record.id


def test_ids_in_one_second_count_up(tmp_path: Path) -> None:
    store = Store(tmp_path)
    ids = [finished_run(store) for _ in range(5)]
    assert len(set(ids)) == 5
    stamps = {run_id.split("-")[0] for run_id in ids}
    for stamp in stamps:
        seqs = sorted(int(i.split("-")[1]) for i in ids if i.startswith(stamp))
        assert seqs == list(range(1, len(seqs) + 1))


def test_a_run_whose_owner_let_go_is_interrupted(tmp_path: Path) -> None:
    store = Store(tmp_path)
    held, owner = store.create_run(toolchain="t", params={}, steps=[])
    store.update_run(held.id, status="running")
    assert store.mark_interrupted() == []
    owner.release()
    assert store.mark_interrupted() == [held.id]
    run = store.require_run(held.id)
    assert run.status == "interrupted" and "ended unexpectedly" in (run.error or "")


def test_big_prunes_delete_folders_in_the_background(tmp_path: Path) -> None:
    store = Store(tmp_path)
    ids = [finished_run(store) for _ in range(BACKGROUND_DELETE + 10)]
    assert (
        store.prune(keep=5) == ids[:-5][::-1] or len(store.list_runs(HistoryQuery(limit=999))) == 5
    )
    assert len(store.list_runs(HistoryQuery(limit=999))) == 5
    assert not any((tmp_path / "runs" / run_id).exists() for run_id in ids[:-5])
    deadline = time.monotonic() + 20
    while (tmp_path / "runs" / ".trash").exists() and any((tmp_path / "runs" / ".trash").iterdir()):
        assert time.monotonic() < deadline, "the background delete never finished"
        time.sleep(0.05)
    assert all((tmp_path / "runs" / run_id).exists() for run_id in ids[-5:])


@pytest.mark.parametrize("bad", ["../x", "20250208123359", "20250208123359-1/..", "x-1", ""])
def test_only_run_ids_reach_a_path(bad: str) -> None:
    with pytest.raises(NotFoundError):
        check_run_id(bad)
