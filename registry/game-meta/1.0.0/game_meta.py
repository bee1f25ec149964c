"""game-meta: read a set of CSV design tables and write their metadata as JSON.

    game-meta SOURCE [--tables DIR] [--out FILE] [--json]

SOURCE is a folder of CSV files, or the name of a table set (d01) under the tables folder:
--tables, else $GAME_TABLES, else ./tables.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import sys
from pathlib import Path

VERSION = "1.0.0"


def infer_type(values: list[str]) -> str:
    present = [v.strip() for v in values if v.strip()]
    if present and all(v.lower() in ("true", "false") for v in present):
        return "bool"
    for kind, convert in (("int", int), ("float", float)):
        try:
            for value in present:
                convert(value)
        except ValueError:
            continue
        return kind if present else "string"
    return "string"


def read_table(path: Path) -> dict[str, object]:
    with path.open(encoding="utf-8-sig", newline="") as file:
        rows = list(csv.reader(file))
    if not rows:
        raise ValueError(f"{path}: empty table (no header row)")
    header, body = rows[0], rows[1:]
    for number, row in enumerate(body, start=2):
        if len(row) != len(header):
            raise ValueError(
                f"{path}:{number}: {len(row)} values, the header has {len(header)} columns"
            )
    columns = [
        {"name": name, "type": infer_type([row[i] for row in body])}
        for i, name in enumerate(header)
    ]
    return {
        "name": path.stem,
        "file": str(path.resolve()),
        "rows": len(body),
        "columns": columns,
        "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
    }


def find_source(source: str, tables: str | None) -> Path:
    direct = Path(source)
    if direct.is_dir():
        return direct
    root = Path(tables or os.environ.get("GAME_TABLES") or "tables")
    candidate = root / source
    if candidate.is_dir():
        return candidate
    raise ValueError(f"no table folder {source!r} (looked in . and {root})")


def main(argv: list[str]) -> int:
    sys.stdout.reconfigure(encoding="utf-8")
    sys.stderr.reconfigure(encoding="utf-8")
    parser = argparse.ArgumentParser(prog="game-meta", description=__doc__.splitlines()[0])
    parser.add_argument("source", help="a folder of CSV tables, or a table set name")
    parser.add_argument("--tables", help="where table sets live (default $GAME_TABLES)")
    parser.add_argument("--out", default="meta.json", help="metadata file (default meta.json)")
    parser.add_argument("--json", action="store_true", help="also print the metadata")
    parser.add_argument("--version", action="version", version=f"game-meta {VERSION}")
    args = parser.parse_args(argv)
    try:
        folder = find_source(args.source, args.tables)
        paths = sorted(folder.glob("*.csv"))
        if not paths:
            raise ValueError(f"{folder}: no .csv tables")
        tables = []
        for path in paths:
            table = read_table(path)
            tables.append(table)
            print(
                f"{table['name']}: {table['rows']} rows, {len(table['columns'])} columns",
                flush=True,
            )
    except (OSError, ValueError) as exc:
        print(f"game-meta: error: {exc}", file=sys.stderr)
        return 1
    meta = {
        "tool": "game-meta",
        "version": VERSION,
        "source": str(folder.resolve()),
        "tables": tables,
    }
    Path(args.out).write_text(json.dumps(meta, ensure_ascii=False, indent=2), encoding="utf-8")
    print(f"wrote {args.out}: {len(tables)} tables", flush=True)
    if args.json:
        print(json.dumps(meta, ensure_ascii=False), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
