"""Completion of a name (`toolrun exec hello@<TAB>`) against the floor (`python -c pass`) and
against typer's own answer for a command name (`toolrun tool in<TAB>`), in one run. Target:
a name under 100 ms. Prints medians of 15 runs; exits 1 if the target is missed."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RUNS = 15
TARGET = 0.100


def timed(args: list[str], env: dict[str, str], cwd: Path) -> float:
    started = time.perf_counter()
    subprocess.run(args, env=env, cwd=cwd, capture_output=True, check=False)
    return time.perf_counter() - started


def main() -> int:
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        home, work = root / "home", root / "work"
        work.mkdir()
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        env["TOOLRUN_HOME"] = str(home)
        registry = work / "registry"
        for version in ("1.0.0", "1.1.0", "2.0.0"):
            folder = registry / "hello" / version
            folder.mkdir(parents=True)
            (folder / "main.py").write_text("print('hi')\n")
            (folder / "tool.toml").write_text(
                f'name = "hello"\nversion = "{version}"\n'
                'command = ["{python}", "{tool_dir}/main.py"]\n[files]\n'
            )
            subprocess.run(
                [sys.executable, "-m", "toolrun", "registry", "rehash", str(folder)],
                env=env, cwd=work, check=True, capture_output=True,
            )  # fmt: skip
        name = {**env, "_TOOLRUN_COMPLETE": "complete_bash",
                "COMP_WORDS": "toolrun exec hello@", "COMP_CWORD": "2"}  # fmt: skip
        command = {**env, "_TOOLRUN_COMPLETE": "complete_bash",
                   "COMP_WORDS": "toolrun tool in", "COMP_CWORD": "2"}  # fmt: skip
        toolrun = [sys.executable, "-m", "toolrun"]
        floor = [sys.executable, "-c", "pass"]
        for _ in range(3):  # warm: byte code, the page cache
            timed(toolrun, name, work)
            timed(toolrun, command, work)
        rows: dict[str, list[float]] = {"floor": [], "name": [], "typer": []}
        for _ in range(RUNS):
            rows["floor"].append(timed(floor, env, work))
            rows["name"].append(timed(toolrun, name, work))
            rows["typer"].append(timed(toolrun, command, work))
    medians = {key: statistics.median(values) for key, values in rows.items()}
    print(f"load average: {os.getloadavg()[0]:.2f}")
    print(f"python -c pass (floor)           {medians['floor'] * 1000:7.1f} ms")
    print(f"toolrun exec hello@<TAB> (names) {medians['name'] * 1000:7.1f} ms")
    print(f"toolrun tool in<TAB> (typer)     {medians['typer'] * 1000:7.1f} ms")
    met = medians["name"] < TARGET
    print(f"target: a name under {TARGET * 1000:.0f} ms: {'met' if met else 'MISSED'}")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
