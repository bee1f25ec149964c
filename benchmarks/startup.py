"""Start-up as a ratio to `python -c pass`, measured in the same run.

Targets, for the `toolrun` console script: `toolrun --version` at most 3x and `toolrun tool
list` with 200 installed versions (20 tools x 10 versions) at most 6x the median of
`python -c pass`. `python -m toolrun` is timed too and reported beside it. The commands are
interleaved, 20 runs each, from an empty working folder; the medians are compared. A probe
then reports which of textual, httpx, starlette, uvicorn, typer and rich each command imports.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

from common import PYTHON, TOOLRUN, environment, machine, median_ms, verdict, wall, write_tool

RUNS = 20
HEAVY = ("textual", "httpx", "starlette", "uvicorn", "typer", "rich")
PROBE = f"""
import sys
sys.argv = ["toolrun", *sys.argv[1:]]
from toolrun.__main__ import main
main()
print("HEAVY:", *(m for m in {HEAVY!r} if m in sys.modules))
"""
COMMANDS = {
    "python -c pass": ([PYTHON, "-c", "pass"], None),
    "toolrun --version": ([TOOLRUN, "--version"], 3),
    "python -m toolrun --version": ([PYTHON, "-m", "toolrun", "--version"], None),
    "toolrun tool list (200)": ([TOOLRUN, "tool", "list"], 6),
    "python -m toolrun tool list (200)": ([PYTHON, "-m", "toolrun", "tool", "list"], None),
}


def install_tools(root: Path, home: Path) -> None:
    """20 tools x 10 versions in a folder registry, each installed into ``home``."""
    from toolrun.tools.installer import Installer
    from toolrun.tools.registry import FolderRegistry

    installer = Installer(home / "tools")
    registry = FolderRegistry("bench", root)
    for tool in range(20):
        for minor in range(10):
            write_tool(root, f"t{tool}", f"1.{minor}.0", "pass\n", description="x")
            installer.install(registry, f"t{tool}", f"1.{minor}.0")


def main() -> int:
    samples: dict[str, list[float]] = {name: [] for name in COMMANDS}
    imported: dict[str, str] = {}
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        install_tools(root / "registry", root / "home")
        env = environment(root / "home")
        cwd = root / "empty"
        cwd.mkdir()
        listing = subprocess.run(
            [TOOLRUN, "tool", "list", "--json"], env=env, cwd=cwd, capture_output=True, text=True
        )
        assert listing.returncode == 0 and listing.stdout.count('"name"') == 200, listing.stderr
        for argv, _ in COMMANDS.values():  # warm-up: bytecode and page cache
            wall(argv, env=env, cwd=cwd)
        for _ in range(RUNS):
            for name, (argv, _) in COMMANDS.items():
                samples[name].append(wall(argv, env=env, cwd=cwd))
        for args in (["--version"], ["tool", "list"]):
            probe = subprocess.run(
                [PYTHON, "-c", PROBE, *args], env=env, cwd=cwd, capture_output=True, text=True
            )
            found = [line for line in probe.stdout.splitlines() if line.startswith("HEAVY:")]
            assert found, probe.stderr
            imported[" ".join(args)] = found[-1].removeprefix("HEAVY:").strip() or "none"
    base = median_ms(samples["python -c pass"])
    print(f"machine: {machine()}")
    print(f"{'command':36s} {'median':>9s} {'ratio':>6s}  target")
    ok = True
    for name, (_, limit) in COMMANDS.items():
        ms = median_ms(samples[name])
        ratio = ms / base
        target = f"<= {limit}x: {verdict(ratio <= limit)}" if limit else ""
        ok = ok and (limit is None or ratio <= limit)
        print(f"{name:36s} {ms:6.1f} ms {ratio:5.2f}x  {target}")
    for args, heavy in imported.items():
        print(f"heavy modules imported by `toolrun {args}`: {heavy}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
