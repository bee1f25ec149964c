"""Which runs a listing shows: the filters of ``HistoryQuery`` and its orders, made into SQL
(the caller's text only ever as a bound value)."""

from __future__ import annotations

from ..records import record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

SORT_ORDERS = {
    "started": "created_at",
    "id": "created_at",
    "toolchain": "toolchain",
    "status": "status",
    "duration": "(finished_at - started_at)",
    "requester": "requester",
    "origin": "origin",
}
RECENT_WINDOW = 20_000  # newest runs searched by a plain scan before the index is asked


@record(frozen=True)
class HistoryQuery:
    """Which runs ``Store.list_runs`` returns, in which order."""

    status: str | None = None
    toolchain: str | None = None
    since: float | None = None
    until: float | None = None
    requester: str | None = None
    worker: str | None = None  # a cluster worker one of the run's attempts ran on
    text: str | None = None
    limit: int = 50
    offset: int = 0
    order: str = "started"  # a key of SORT_ORDERS
    descending: bool = True
    before: tuple[float, int] | None = None  # (created_at, seq) of a run: only older ones


def wants_text_index(query: HistoryQuery) -> bool:
    """Whether the free-text index could answer the query's text (trigrams: three or more)."""
    return bool(query.text and len(query.text) >= 3)


def list_sql(
    query: HistoryQuery, *, recent: bool = False, indexed: bool = False
) -> tuple[str, list[Any]]:
    """The SELECT of a page of runs; ``recent`` reads only the newest ``RECENT_WINDOW``,
    ``indexed`` finds the text through the free-text index."""
    clauses, values = filters(query, indexed=indexed)
    if recent:
        clauses.append(
            "created_at >= COALESCE((SELECT created_at FROM runs ORDER BY created_at DESC"
            f" LIMIT 1 OFFSET {RECENT_WINDOW - 1}), 0)"
        )
    where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
    direction = "DESC" if query.descending else "ASC"
    order = SORT_ORDERS.get(query.order, "created_at")  # never the caller's text in SQL
    sql = (
        f"SELECT * FROM runs {where} ORDER BY {order} {direction}, created_at DESC, seq DESC"
        " LIMIT ? OFFSET ?"
    )
    return sql, [*values, query.limit, query.offset]


def count_sql(query: HistoryQuery, *, indexed: bool = False) -> tuple[str, list[Any]]:
    """The SELECT COUNT of every run the query matches, whatever its page."""
    clauses, values = filters(query, indexed=indexed)
    where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
    return f"SELECT COUNT(*) FROM runs {where}", values


def filters(query: HistoryQuery, *, indexed: bool = False) -> tuple[list[str], list[Any]]:
    clauses: list[str] = []
    values: list[Any] = []
    if query.status:
        clauses.append("status = ?")
        values.append(query.status)
    if query.toolchain:
        clauses.append("toolchain = ?")
        values.append(query.toolchain)
    if query.since is not None:
        clauses.append("created_at >= ?")
        values.append(query.since)
    if query.until is not None:
        clauses.append("created_at < ?")
        values.append(query.until)
    if query.requester:
        clauses.append("requester = ?")
        values.append(query.requester)
    if query.worker:
        clauses.append(
            "id IN (SELECT steps.run_id FROM steps, json_each(steps.workers)"
            " WHERE steps.workers IS NOT NULL AND json_each.value = ?)"
        )
        values.append(query.worker)
    if query.before is not None:
        clauses.append("(created_at < ? OR (created_at = ? AND seq < ?))")
        values.extend([query.before[0], query.before[0], query.before[1]])
    if query.text and "\x00" in query.text:
        # Nothing stored holds a NUL (JSON writes \u0000), and FTS5 reads a quoted phrase only
        # up to one: it would be a syntax error, not a search.
        clauses.append("0")
    elif query.text and indexed:
        clauses.append("rowid IN (SELECT rowid FROM runs_text WHERE runs_text MATCH ?)")
        values.append('"' + query.text.replace('"', '""') + '"')
    elif query.text:
        clauses.append(
            "(id LIKE ? ESCAPE '\\' OR toolchain LIKE ? ESCAPE '\\'"
            " OR requester LIKE ? ESCAPE '\\' OR params LIKE ? ESCAPE '\\')"
        )
        values.extend([like(query.text)] * 4)
    return clauses, values


def like(text: str) -> str:
    """A LIKE pattern matching ``text`` anywhere, its own % and _ taken literally."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"
