"""Plain output: aligned tables, JSON and messages, with no import that costs start-up time."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence

# `typing` costs milliseconds at start-up; annotations alone never need it at run time.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def print_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(cell)) for w, cell in zip(widths, row, strict=True)]
    lines = [_row(headers, widths).upper()]
    lines.extend(_row(row, widths) for row in rows)
    sys.stdout.write("\n".join(lines) + "\n")


def _row(cells: Sequence[str], widths: list[int]) -> str:
    return "  ".join(cell.ljust(width) for cell, width in zip(cells, widths, strict=True)).rstrip()


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def info(message: str) -> None:
    print(message, flush=True)


def warn(message: str) -> None:
    print(f"toolrun: warning: {message}", file=sys.stderr, flush=True)
