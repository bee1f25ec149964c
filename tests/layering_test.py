"""The architecture stays true by itself: the engine imports no front end, and the hot
commands import nothing heavy."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src" / "toolrun"
FRONT_ENDS = {"typer", "rich", "textual", "starlette", "uvicorn", "click"}
EDGE_PACKAGES = ("cli", "tui", "daemon")


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
            elif node.level >= 1 and node.module:
                names.add("." + node.module.split(".")[0])
    return names


def test_the_engine_side_imports_no_front_end() -> None:
    for path in SRC.glob("*.py"):
        if path.name == "__main__.py":
            continue  # the entry point dispatches to the CLI by design
        imports = imported_modules(path)
        assert not imports & FRONT_ENDS, f"{path.name} imports {imports & FRONT_ENDS}"
        edges = {f".{edge}" for edge in EDGE_PACKAGES}
        assert not imports & edges, f"{path.name} imports a front end: {imports & edges}"


def test_the_tui_touches_no_process_and_no_database() -> None:
    for path in (SRC / "tui").glob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        runtime = set()
        for node in tree.body:  # module level, outside `if TYPE_CHECKING:`
            if isinstance(node, ast.Import):
                runtime.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module:
                runtime.add(("." * node.level) + node.module)
        forbidden = {"sqlite3", "subprocess", "..store", "..process", "..installer"}
        assert not runtime & forbidden, f"{path.name} imports {runtime & forbidden}"
