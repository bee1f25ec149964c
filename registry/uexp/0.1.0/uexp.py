"""uexp: export design tables to client data (typed JSON), then push and report.

    uexp OUT_DIR [push] [report] [--meta FILE]

Reads the metadata game-meta wrote (--meta, default meta.json), writes OUT_DIR/<table>.json,
then runs the words after OUT_DIR in order: push (simulated upload), report (a summary).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
from pathlib import Path

VERSION = "0.1.0"
CONVERT = {
    "int": int,
    "float": float,
    "bool": lambda v: v.strip().lower() == "true",
    "string": str,
}


def typed_rows(table: dict) -> list[dict]:
    types = {c["name"]: c["type"] for c in table["columns"]}
    with open(table["file"], encoding="utf-8-sig", newline="") as file:
        return [
            {k: CONVERT[types[k]](v) if v.strip() else None for k, v in row.items()}
            for row in csv.DictReader(file)
        ]


def export(meta: dict, out: Path, style: str) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for table in meta["tables"]:
        rows = typed_rows(table)
        path = out / f"{table['name']}.json"
        indent = 2 if style == "pretty" else None
        separators = None if style == "pretty" else (",", ":")
        text = json.dumps(rows, ensure_ascii=False, indent=indent, separators=separators)
        path.write_text(text, encoding="utf-8")
        written.append(path)
        print(f"exported {table['name']}: {len(rows)} rows -> {path.as_posix()}", flush=True)
    return written


def main(argv: list[str]) -> int:
    sys.stdout.reconfigure(encoding="utf-8")
    sys.stderr.reconfigure(encoding="utf-8")
    parser = argparse.ArgumentParser(prog="uexp", description=__doc__.splitlines()[0])
    parser.add_argument("out", help="output folder, relative to the working directory")
    parser.add_argument("actions", nargs="*", help="push and/or report, in order")
    parser.add_argument("--meta", default="meta.json", help="game-meta's output")
    parser.add_argument("--version", action="version", version=f"uexp {VERSION}")
    args = parser.parse_args(argv)
    unknown = [a for a in args.actions if a not in ("push", "report")]
    if unknown:
        parser.error(f"unknown action {unknown[0]!r} (choose push, report)")
    try:
        meta = json.loads(Path(args.meta).read_text(encoding="utf-8"))
        written = export(meta, Path(args.out), os.environ.get("UEXP_FORMAT", "pretty"))
    except (OSError, ValueError, KeyError) as exc:
        print(f"uexp: error: {exc}", file=sys.stderr)
        return 1
    for action in args.actions:
        if action == "push":
            for path in written:
                print(f"pushed {path.name} ({path.stat().st_size} bytes)", flush=True)
        else:
            total = sum(p.stat().st_size for p in written)
            print(f"report: {len(written)} tables, {total} bytes in {args.out}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
