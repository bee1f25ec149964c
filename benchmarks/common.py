"""Small helpers shared by the benchmark scripts: timing, medians, the machine, a scratch home."""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

PYTHON = sys.executable
TOOLRUN = str(Path(sys.executable).with_name("toolrun"))


def wall(
    argv: list[str],
    *,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    stdout: int | None = subprocess.DEVNULL,
) -> float:
    """Seconds one run of ``argv`` takes, wall clock."""
    started = time.perf_counter()
    subprocess.run(argv, env=env, cwd=cwd, stdout=stdout, stderr=subprocess.DEVNULL, check=False)
    return time.perf_counter() - started


def median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def environment(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["TOOLRUN_HOME"] = str(home)
    return env


def machine() -> str:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = ""
    try:
        kib = int(Path("/proc/meminfo").read_text().split()[1])
        memory = f", {kib / 1024 / 1024:.0f} GiB"
    except (OSError, ValueError, IndexError):
        pass
    return (
        f"{os.cpu_count()} cores {model}{memory}; Python {platform.python_version()}; "
        f"{platform.system()} {platform.release()}"
    )


def verdict(ok: bool) -> str:
    return "ok" if ok else "MISSED"


def write_tool(root: Path, name: str, version: str, script: str, description: str = "") -> Path:
    """A tool version in a folder registry, hashed."""
    from toolrun.tools.publish import rehash

    folder = root / name / version
    folder.mkdir(parents=True)
    (folder / "main.py").write_text(script, encoding="utf-8")
    about = f'description = "{description}"\n' if description else ""
    (folder / "tool.toml").write_text(
        f'name = "{name}"\nversion = "{version}"\n{about}'
        'command = ["{python}", "{tool_dir}/main.py"]\n\n[files]\n',
        encoding="utf-8",
    )
    rehash(folder)
    return folder
