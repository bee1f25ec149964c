"""What ``toolrun history prune`` deletes (finished runs by age, count and disk budget), and
how many run folders go at once without waiting on the file system."""

from __future__ import annotations

import contextlib
import os
import time

TYPE_CHECKING = False
if TYPE_CHECKING:
    from pathlib import Path
    from typing import Any

BACKGROUND_DELETE = 200  # runs deleted at once before folders go to a background deleter


def prune_sql(
    *, older_than: float | None, keep: int | None, max_size: int | None
) -> tuple[str, list[Any]] | None:
    """The SELECT of the finished runs older than ``older_than`` seconds, beyond the newest
    ``keep``, or beyond ``max_size`` bytes of newer runs; None when no limit is given."""
    conditions = []
    values: list[Any] = []
    if older_than is not None:
        conditions.append("created_at < ?")
        values.append(time.time() - older_than)
    if keep is not None:
        conditions.append("position > ?")
        values.append(keep)
    if max_size is not None:
        conditions.append("total > ?")
        values.append(max_size)
    if not conditions:
        return None
    # Newest first: a run's position and the bytes of it and every newer run decide.
    sql = (
        "SELECT id FROM (SELECT id, created_at,"
        " ROW_NUMBER() OVER (ORDER BY created_at DESC, seq DESC) AS position,"
        " SUM(size_bytes) OVER (ORDER BY created_at DESC, seq DESC) AS total"
        " FROM runs WHERE status NOT IN ('queued', 'running'))"
        f" WHERE {' OR '.join(conditions)}"
    )
    return sql, values


def remove_folders(runs_dir: Path, run_ids: list[str]) -> None:
    """Delete these runs' folders. Many are renamed into ``runs/.trash`` (cheap) and deleted
    by a detached process, so pruning a hundred thousand runs does not wait on the file
    system."""
    import shutil

    if len(run_ids) < BACKGROUND_DELETE:
        for run_id in run_ids:
            shutil.rmtree(runs_dir / run_id, ignore_errors=True)
        return
    trash = runs_dir / ".trash" / f"{os.getpid()}-{time.time_ns()}"
    trash.mkdir(parents=True)
    for run_id in run_ids:
        with contextlib.suppress(FileNotFoundError):
            os.rename(runs_dir / run_id, trash / run_id)
    delete_in_background(runs_dir / ".trash")


def delete_in_background(folder: Path) -> None:
    """Delete ``folder`` from a detached process that outlives this one."""
    import subprocess
    import sys

    code = "import shutil, sys; shutil.rmtree(sys.argv[1], ignore_errors=True)"
    options: dict[str, Any] = {}
    if sys.platform == "win32":
        options["creationflags"] = subprocess.DETACHED_PROCESS
    else:
        options["start_new_session"] = True
    subprocess.Popen(
        [sys.executable, "-c", code, str(folder)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        **options,
    )
