"""Installing a 50 MB tool from a loopback HTTP registry: at least 100 MB/s, memory flat.

A folder registry gets `bigtool 1.0.0` (one 50 MB file of random bytes) and `midtool 1.0.0`
(10 MB), hashed with `rehash`; `build_registry` writes the HTTP tree, a ThreadingHTTPServer
serves it on 127.0.0.1 and `toolrun registry add` points a scratch TOOLRUN_HOME at it. Each
`toolrun tool install NAME==1.0.0` runs as a subprocess from an empty folder (5 runs, median,
`toolrun tool remove` in between, untimed); MB/s = archive MB / wall time of the whole command.
Beside it: `curl -s -o /dev/null` of the same archive (baseline) and the same command when the
tool is already installed (start-up, index and resolution: the fixed cost). Peak RSS of the
install process (os.wait4) for the 10 MB and 50 MB archives shows whether memory grows with size;
the peak RSS of the already-installed command is the floor the imports alone set.
Targets: >= 100 MB/s for the 50 MB archive; the 50 MB peak RSS within 10 MiB of the 10 MB one.
"""

from __future__ import annotations

import functools
import http.server
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from common import TOOLRUN, environment, machine, median_ms, verdict

RUNS = 5
TOOLS = {"bigtool": 50, "midtool": 10}  # name -> size in MB (10**6 bytes)
TARGET_MB_S = 100
FLAT_MIB = 10


class Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


def make_tool(root: Path, name: str, megabytes: int) -> None:
    from toolrun.tools.publish import rehash

    folder = root / name / "1.0.0"
    folder.mkdir(parents=True)
    with (folder / "data.bin").open("wb") as file:
        for _ in range(megabytes):
            file.write(os.urandom(1_000_000))
    (folder / "tool.toml").write_text(
        f'name = "{name}"\nversion = "1.0.0"\ndescription = "x"\n'
        'command = ["{python}", "-c", "pass"]\n\n[files]\n'
    )
    rehash(folder)


def timed(argv: list[str], env: dict[str, str], cwd: Path) -> tuple[float, float]:
    """Wall seconds and peak RSS (MiB) of one command, which must succeed."""
    with tempfile.TemporaryFile() as output:
        started = time.perf_counter()
        process = subprocess.Popen(argv, env=env, cwd=cwd, stdout=output, stderr=output)
        _pid, status, usage = os.wait4(process.pid, 0)
        seconds = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        output.seek(0)
        assert process.returncode == 0, output.read().decode()
    return seconds, usage.ru_maxrss / 1024


def main() -> int:
    from toolrun.tools.publish import build_registry

    results = {}
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        for name, megabytes in TOOLS.items():
            make_tool(root / "src", name, megabytes)
        build_registry(root / "src", root / "out")
        handler = functools.partial(Quiet, directory=str(root / "out"))
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        url = f"http://127.0.0.1:{server.server_address[1]}/"
        cwd = root / "empty"
        cwd.mkdir()
        env = environment(root / "home")
        timed([TOOLRUN, "registry", "add", "bench", url], env, cwd)
        for name in TOOLS:
            install = [TOOLRUN, "tool", "install", f"{name}==1.0.0"]
            curl = ["/usr/bin/curl", "-sf", "-o", os.devnull, f"{url}{name}/{name}-1.0.0.zip"]
            runs: dict[str, list[float]] = {"install": [], "again": [], "curl": []}
            peak = idle = 0.0
            for _ in range(RUNS):
                seconds, rss = timed(install, env, cwd)
                runs["install"].append(seconds)
                peak = max(peak, rss)
                seconds, rss = timed(install, env, cwd)  # already installed: the fixed cost
                runs["again"].append(seconds)
                idle = max(idle, rss)
                timed([TOOLRUN, "tool", "remove", f"{name}==1.0.0"], env, cwd)
                runs["curl"].append(timed(curl, env, cwd)[0])
            results[name] = ({k: median_ms(v) for k, v in runs.items()}, peak, idle)
        server.shutdown()
    print(f"machine: {machine()}")
    print(
        f"{'archive':8s} {'install':>10s} {'MB/s':>7s} {'installed':>10s} {'curl':>9s} "
        f"{'curl MB/s':>10s} {'peak RSS':>10s} {'RSS installed':>14s}"
    )
    for name, megabytes in TOOLS.items():
        ms, peak, idle = results[name]
        print(
            f"{megabytes:5d} MB {ms['install']:7.0f} ms {megabytes / ms['install'] * 1000:7.0f} "
            f"{ms['again']:7.0f} ms {ms['curl']:6.0f} ms {megabytes / ms['curl'] * 1000:10.0f} "
            f"{peak:6.1f} MiB {idle:10.1f} MiB"
        )
    big, small = (results[name] for name in TOOLS)
    rate = TOOLS["bigtool"] / big[0]["install"] * 1000
    growth = big[1] - small[1]
    print(f"throughput, 50 MB: {rate:.0f} MB/s (target >= {TARGET_MB_S}: {verdict(rate >= 100)})")
    print(
        f"peak RSS growth from 10 MB to 50 MB: {growth:+.1f} MiB "
        f"(target < {FLAT_MIB} MiB: {verdict(growth < FLAT_MIB)})"
    )
    return 0 if rate >= TARGET_MB_S and growth < FLAT_MIB else 1


if __name__ == "__main__":
    sys.exit(main())
