"""Output throughput: a step printing 2,000,000 lines (about 150 MB) through
`toolrun run --plain >/dev/null`, against the same tool piped to `cat >/dev/null`.

Targets (issue 3): at most 2x the time of the pipe to cat, peak RSS under 100 MB whatever the
output size (a 500,000-line run is measured too, to show memory stays flat). Medians of 3.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import PYTHON, TOOLRUN, environment, machine, median_ms, verdict, write_tool

LINES = 2_000_000
RUNS = 3
SCRIPT = """\
import sys
out = sys.stdout
n = int(sys.argv[1])
for start in range(0, n, 10000):
    out.write("".join(
        f"line {i:>9} of the benchmark's output, about seventy-five bytes long.\\n"
        for i in range(start, min(start + 10000, n))
    ))
out.flush()
"""


def peak_rss_mib(argv: list[str], **kwargs: object) -> tuple[float, float]:
    """Wall seconds and the peak RSS (MiB) of the largest process the command ran."""
    started = time.perf_counter()
    process = subprocess.Popen(
        argv,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        **kwargs,  # type: ignore[call-overload]
    )
    _pid, _status, usage = os.wait4(process.pid, 0)
    return time.perf_counter() - started, usage.ru_maxrss / 1024


def main() -> int:
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        cwd = root / "cwd"
        write_tool(cwd / "registry", "lines", "1.0.0", SCRIPT)
        (cwd / "toolchains").mkdir()
        for count in (LINES, LINES // 4):
            (cwd / "toolchains" / f"lines{count}.yaml").write_text(
                f"toolchain:\n  - print: {{cmd: lines, args: ['{count}']}}\n"
            )
        env = environment(root / "home")
        subprocess.run(
            [TOOLRUN, "tool", "install", "lines"],
            env=env,
            cwd=cwd,
            check=True,
            stdout=subprocess.DEVNULL,
        )
        tool = str(root / "home" / "tools" / "lines" / "1.0.0" / "main.py")
        piped, ours, rss = [], [], {}
        for _ in range(RUNS):
            started = time.perf_counter()
            subprocess.run(f"'{PYTHON}' '{tool}' {LINES} | cat >/dev/null", shell=True, check=True)
            piped.append(time.perf_counter() - started)
            seconds, rss[LINES] = peak_rss_mib(
                [TOOLRUN, "run", "--plain", f"lines{LINES}"], env=env, cwd=cwd
            )
            ours.append(seconds)
            subprocess.run(
                [TOOLRUN, "history", "prune", "--keep", "0"],
                env=env,
                cwd=cwd,
                stdout=subprocess.DEVNULL,
                check=True,
            )
        _, rss[LINES // 4] = peak_rss_mib(
            [TOOLRUN, "run", "--plain", f"lines{LINES // 4}"], env=env, cwd=cwd
        )
    ratio = median_ms(ours) / median_ms(piped)
    print(f"machine: {machine()}")
    print(f"tool | cat >/dev/null            {median_ms(piped):8.0f} ms")
    print(
        f"toolrun run --plain >/dev/null   {median_ms(ours):8.0f} ms  ratio {ratio:.2f}x "
        f"(target <= 2x: {verdict(ratio <= 2)})"
    )
    for count, mib in sorted(rss.items()):
        print(
            f"peak RSS, {count:>9,} lines        {mib:8.1f} MiB (target < 100: "
            f"{verdict(mib < 100)})"
        )
    return 0 if ratio <= 2 and max(rss.values()) < 100 else 1


if __name__ == "__main__":
    sys.exit(main())
