"""Start-up as a ratio to `python -c pass`, measured in the same run (issue 2).

Targets: `toolrun --version` at most 3x; `toolrun tool list` with 200 installed versions at
most 6x. Commands are interleaved, 30 runs each, medians compared. Also checks that textual,
httpx, starlette and uvicorn (and typer) are not imported on these paths.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

from common import PYTHON, TOOLRUN, environment, machine, median_ms, verdict, wall, write_tool

RUNS = 30
HEAVY = ("textual", "httpx", "starlette", "uvicorn", "typer", "rich")
PROBE = """
import sys
sys.argv = ["toolrun", *sys.argv[1:]]
from toolrun.__main__ import main
main()
print(" ".join(m for m in {heavy!r} if m in sys.modules), file=sys.stderr)
"""


def main() -> int:
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        registry = root / "registry"
        from toolrun.installer import Installer
        from toolrun.registry import FolderRegistry

        installer = Installer(root / "home" / "tools")
        source = FolderRegistry("bench", registry)
        for tool in range(20):
            for minor in range(10):
                write_tool(registry, f"tool{tool}", f"1.{minor}.0", "pass\n")
                installer.install(source, f"tool{tool}", f"1.{minor}.0")
        env = environment(root / "home")
        cwd = root / "empty"
        cwd.mkdir()
        commands = {
            "python -c pass": [PYTHON, "-c", "pass"],
            "toolrun --version": [TOOLRUN, "--version"],
            "toolrun tool list (200)": [TOOLRUN, "tool", "list"],
        }
        samples: dict[str, list[float]] = {name: [] for name in commands}
        for _ in range(RUNS):
            for name, argv in commands.items():
                samples[name].append(wall(argv, env=env, cwd=cwd))
        imported = {}
        for args in (["--version"], ["tool", "list"]):
            probe = subprocess.run(
                [PYTHON, "-c", PROBE.format(heavy=HEAVY), *args],
                env=env,
                cwd=cwd,
                capture_output=True,
                text=True,
            )
            imported[" ".join(args)] = probe.stderr.strip().splitlines()[-1:] or [""]
    base = median_ms(samples["python -c pass"])
    print(f"machine: {machine()}")
    ok = True
    for name, limit in (
        ("python -c pass", None),
        ("toolrun --version", 3),
        ("toolrun tool list (200)", 6),
    ):
        ms = median_ms(samples[name])
        line = f"{name:26s} {ms:7.1f} ms  {ms / base:5.2f}x"
        if limit:
            ok = ok and ms / base <= limit
            line += f"  (target <= {limit}x: {verdict(ms / base <= limit)})"
        print(line)
    for args, modules in imported.items():
        heavy = modules[0] or "none"
        ok = ok and heavy == "none"
        print(f"heavy modules imported by `toolrun {args}`: {heavy}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
