"""Installing a 50 MB tool from a loopback HTTP registry: at least 100 MB/s, memory flat (issue 2).

Builds a registry holding a tool with one 50 MB file of random bytes (and a 10 MB one, to show
peak memory does not grow with the archive), serves it with a threaded HTTP server on
127.0.0.1, and times (5 runs, median) the install itself, `Installer.install` (download while
hashing, unpack while hashing, receipt, rename), and the whole `toolrun tool install` command,
whose figure includes the CLI's start-up (typer and httpx imports); `curl` fetching the same
archive is the baseline, in the same run.
"""

from __future__ import annotations

import functools
import http.server
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from common import TOOLRUN, environment, machine, median_ms, verdict

RUNS = 5
SIZES_MB = (50, 10)


class Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


def install(env: dict[str, str], cwd: Path, spec: str) -> tuple[float, float]:
    """Wall seconds and peak RSS (MiB) of one `toolrun tool install`."""
    started = time.perf_counter()
    process = subprocess.Popen(
        [TOOLRUN, "tool", "install", spec],
        env=env,
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    _pid, status, usage = os.wait4(process.pid, 0)
    assert status == 0, process.stderr.read() if process.stderr else status
    return time.perf_counter() - started, usage.ru_maxrss / 1024


def main() -> int:
    from toolrun.publish import build_registry, rehash

    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        for size in SIZES_MB:
            folder = root / "src" / f"big{size}" / "1.0.0"
            folder.mkdir(parents=True)
            with (folder / "data.bin").open("wb") as file:
                for _ in range(size):
                    file.write(os.urandom(1024 * 1024))
            (folder / "tool.toml").write_text(
                f'name = "big{size}"\nversion = "1.0.0"\ncommand = ["{{python}}"]\n\n[files]\n'
            )
            rehash(folder)
        build_registry(root / "src", root / "out")
        handler = functools.partial(Quiet, directory=str(root / "out"))
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        url = f"http://127.0.0.1:{server.server_address[1]}/"
        home, cwd = root / "home", root / "cwd"
        cwd.mkdir()
        env = environment(home)
        subprocess.run(
            [TOOLRUN, "registry", "add", "bench", url],
            env=env,
            cwd=cwd,
            check=True,
            stdout=subprocess.DEVNULL,
        )
        results: dict[int, tuple[list[float], float]] = {}
        curl: list[float] = []
        for size in SIZES_MB:
            seconds, peak = [], 0.0
            for _ in range(RUNS):
                shutil.rmtree(home / "tools", ignore_errors=True)
                wall, rss = install(env, cwd, f"big{size}==1.0.0")
                seconds.append(wall)
                peak = max(peak, rss)
                if size == SIZES_MB[0]:
                    started = time.perf_counter()
                    subprocess.run(
                        ["curl", "-s", "-o", os.devnull, f"{url}big{size}/big{size}-1.0.0.zip"],
                        check=True,
                    )
                    curl.append(time.perf_counter() - started)
            results[size] = (seconds, peak)
        library = []
        from toolrun.installer import Installer
        from toolrun.registry import HttpRegistry

        registry = HttpRegistry("bench", url, timeout=30)
        for _ in range(RUNS):
            shutil.rmtree(root / "lib", ignore_errors=True)
            started = time.perf_counter()
            Installer(root / "lib" / "tools").install(registry, f"big{SIZES_MB[0]}", "1.0.0")
            library.append(time.perf_counter() - started)
        server.shutdown()
    print(f"machine: {machine()}")
    library_rate = SIZES_MB[0] / (median_ms(library) / 1000)
    big = SIZES_MB[0]
    rate = big / (median_ms(results[big][0]) / 1000)
    print(f"curl of the {big} MB archive           {median_ms(curl):7.0f} ms")
    print(
        f"install ({big} MB), Installer.install  {median_ms(library):7.0f} ms  "
        f"{library_rate:6.0f} MB/s (target >= 100: {verdict(library_rate >= 100)})"
    )
    print(
        f"`toolrun tool install`, {big} MB        {median_ms(results[big][0]):7.0f} ms  "
        f"{rate:6.0f} MB/s (the whole command, start-up included)"
    )
    for size in SIZES_MB:
        print(f"peak RSS of the install, {size:2d} MB archive: {results[size][1]:6.1f} MiB")
    return 0 if library_rate >= 100 else 1


if __name__ == "__main__":
    sys.exit(main())
