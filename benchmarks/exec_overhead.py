"""What `toolrun exec` adds to running a tool: target under 100 ms median (issue 3).

Runs a do-nothing Python tool directly and through `toolrun exec` (which records the run in
the history), interleaved in one run, 30 times each, and reports the medians and the difference.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from common import PYTHON, TOOLRUN, environment, machine, median_ms, verdict, wall, write_tool

RUNS = 30
TARGET_MS = 100


def main() -> int:
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        write_tool(root / "cwd" / "registry", "noop", "1.0.0", "pass\n")
        env = environment(root / "home")
        cwd = root / "cwd"
        exec_argv = [TOOLRUN, "exec", "noop", "--"]
        wall(exec_argv, env=env, cwd=cwd)  # installs the tool and warms the caches
        tool = str(root / "home" / "tools" / "noop" / "1.0.0" / "main.py")
        direct, through = [], []
        for _ in range(RUNS):
            direct.append(wall([PYTHON, tool], env=env, cwd=cwd))
            through.append(wall(exec_argv, env=env, cwd=cwd))
    overhead = median_ms(through) - median_ms(direct)
    print(f"machine: {machine()}")
    print(f"direct tool          {median_ms(direct):7.1f} ms")
    print(f"toolrun exec         {median_ms(through):7.1f} ms")
    print(
        f"overhead             {overhead:7.1f} ms  (target < {TARGET_MS} ms: "
        f"{verdict(overhead < TARGET_MS)})"
    )
    return 0 if overhead < TARGET_MS else 1


if __name__ == "__main__":
    sys.exit(main())
