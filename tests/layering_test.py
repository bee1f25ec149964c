"""The architecture stays true by itself: which package may import which (docs/architecture.md),
and the hot commands import nothing heavy."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src"
PACKAGE = SRC / "toolrun"
FRONT_END_LIBRARIES = {"typer", "rich", "textual", "starlette", "uvicorn", "click"}
FRONT_ENDS = ("cli", "tui", "daemon", "dashboard")
# Each domain package and what it may import of toolrun besides the shared modules at the top
# (paths, errors, config, units, records, cache_files, json_views): layers, top to bottom.
MAY_IMPORT = {
    "automation": {"automation", "runs", "history", "toolchains", "tools"},
    "runs": {"runs", "executors", "history", "toolchains", "tools"},
    "history": {"history", "runs", "toolchains"},  # the store keeps the engine's events
    "executors": {"executors"},
    "toolchains": {"toolchains", "tools"},
    "tools": {"tools", "executors"},  # stale staging: is its installer still alive
}
SHARED = {
    "paths",
    "errors",
    "config",
    "units",
    "records",
    "cache_files",
    "json_views",
    "digests",
    "policy",
    "selectors",  # where a step may run: toolchains say it, executors and the cluster obey
    "loopback",
    "schedules",  # when a toolchain fires: toolchains and config say it, the daemon fires it
    "priorities",  # how soon a run starts: toolchains and runs say it, the daemon and Dask obey
}


def module_name(path: Path) -> str:
    return ".".join(path.relative_to(SRC).with_suffix("").parts)


def imports(path: Path, *, runtime_only: bool = False) -> Iterator[tuple[int, str]]:
    """Every module ``path`` imports, as an absolute name with the line it is on."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    here = module_name(path).split(".")[:-1]
    nodes = tree.body if runtime_only else ast.walk(tree)
    for node in nodes:
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0:
                base = node.module or ""
            else:
                parent = here[: len(here) - (node.level - 1)]
                base = ".".join([*parent, *([node.module] if node.module else [])])
            yield node.lineno, base
            for alias in node.names:  # `from . import events`: a module too
                yield node.lineno, f"{base}.{alias.name}"


def toolrun_room(name: str) -> str | None:
    """The package (or top-level module) of toolrun that ``name`` is in."""
    parts = name.split(".")
    if parts[0] != "toolrun" or len(parts) < 2:
        return None
    return parts[1]


def sources() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


def test_below_the_front_ends_nothing_imports_a_front_end() -> None:
    wrong = []
    for path in sources():
        room = toolrun_room(module_name(path))
        if room in FRONT_ENDS or room == "__main__":
            continue  # the entry point dispatches to the CLI by design
        for line, name in imports(path):
            if name.split(".")[0] in FRONT_END_LIBRARIES or toolrun_room(name) in FRONT_ENDS:
                wrong.append(f"{path.relative_to(SRC)}:{line}: {name}")
    assert not wrong


def test_each_domain_package_imports_only_the_layers_below_it() -> None:
    wrong = []
    for path in sources():
        room = toolrun_room(module_name(path))
        if room not in MAY_IMPORT:
            continue
        for line, name in imports(path):
            other = toolrun_room(name)
            if other is None or other in SHARED or other in ("__init__", "__version__"):
                continue
            if other not in MAY_IMPORT[room]:
                wrong.append(f"{path.relative_to(SRC)}:{line}: {name}")
    assert not wrong


def test_the_engine_reaches_executors_only_through_the_protocol() -> None:
    """Where an attempt runs is the executor's business: the engine hands it a launch and
    reads back output and an ending (executors/protocol.py); the composition root picks it."""
    wrong = []
    for path in (PACKAGE / "runs").rglob("*.py"):
        for line, name in imports(path):
            if toolrun_room(name) == "executors" and not name.startswith(
                ("toolrun.executors.protocol", "toolrun.executors.__init__")
            ):
                wrong.append(f"{path.relative_to(SRC)}:{line}: {name}")
            if name.split(".")[0] in {"subprocess", "signal", "psutil"}:
                wrong.append(f"{path.relative_to(SRC)}:{line}: {name}")
    assert not wrong
    protocol = {name for _, name in imports(PACKAGE / "executors" / "protocol.py")}
    assert not {
        n for n in protocol if toolrun_room(n) not in (None, "records", "selectors", "executors")
    }


def test_the_daemon_and_the_tui_import_no_other_front_end() -> None:
    """Only the CLI starts the others (`toolrun daemon`, the run view): it is the entry point.
    The services object they share lives beside the engine (services.py), not in a front end."""
    wrong = []
    for room, others in (("daemon", {"cli", "tui"}), ("tui", {"cli", "daemon"})):
        for path in (PACKAGE / room).rglob("*.py"):
            for line, name in imports(path):
                if toolrun_room(name) in others:
                    wrong.append(f"{path.relative_to(SRC)}:{line}: {name}")
    assert not wrong


def test_the_tui_touches_no_process_and_no_database() -> None:
    wrong = []
    for path in (PACKAGE / "tui").rglob("*.py"):
        for line, name in imports(path):
            if name.split(".")[0] in {"sqlite3", "subprocess"} or toolrun_room(name) in {
                "executors"
            }:
                wrong.append(f"{path.relative_to(SRC)}:{line}: {name}")
        for line, name in imports(path, runtime_only=True):
            if name.startswith(("toolrun.history.store", "toolrun.tools.installer")):
                wrong.append(f"{path.relative_to(SRC)}:{line}: {name} (at import time)")
    assert not wrong


def test_the_rules_see_every_import_form() -> None:
    """The checks above resolve relative imports: a rule cannot pass by not seeing one."""
    found = dict(imports(PACKAGE / "runs" / "engine.py"))
    assert any(name.startswith("toolrun.tools.") for name in found.values())
    assert any(name.startswith("toolrun.runs.") for name in found.values())
