"""What `toolrun exec` adds to running a tool: target under 100 ms median (issue 3).

Runs a do-nothing Python tool directly and through `toolrun exec` (which records the run in
the history), interleaved in one run, 30 times each, and reports the medians and the difference.
The tool comes from a folder registry (`./registry`), as in the target.

With `--http` the registry is a static HTTP tree instead (`toolrun registry build`, served on
127.0.0.1 by the standard library's server), as a team would set it up, and two more ways are
measured beside the others: with the registry's index reused (the default `registry_cache`),
and with `registry_cache` 0, where every run checks the index with a conditional GET.
"""

from __future__ import annotations

import argparse
import functools
import http.server
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

from common import PYTHON, TOOLRUN, environment, machine, median_ms, verdict, wall, write_tool

RUNS = 30
TARGET_MS = 100


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


def serve(folder: Path) -> str:
    handler = functools.partial(QuietHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_address[1]}/"


def toolrun(*args: str, env: dict[str, str], cwd: Path) -> None:
    subprocess.run([TOOLRUN, *args], env=env, cwd=cwd, check=True, capture_output=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--http", action="store_true", help="also from an HTTP registry")
    parser.add_argument("--runs", type=int, default=RUNS)
    options = parser.parse_args()
    exec_argv = [TOOLRUN, "exec", "noop", "--"]
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        cwd = root / "cwd"
        write_tool(cwd / "registry", "noop", "1.0.0", "pass\n")
        env = environment(root / "home")
        ways = {"toolrun exec": (env, cwd)}
        if options.http:
            tree = root / "tree"
            toolrun("registry", "build", str(cwd / "registry"), str(tree), env=env, cwd=cwd)
            url = serve(tree)
            (root / "elsewhere").mkdir()  # no ./registry there: only the HTTP one
            for label, home, seconds in (
                ("... from HTTP, the index reused", "http-home", None),
                ("... from HTTP, registry_cache 0", "checking-home", "0"),
            ):
                http_env = environment(root / home)
                toolrun("registry", "add", "team", url, env=http_env, cwd=root / "elsewhere")
                if seconds is not None:
                    toolrun("config", "set", "registry_cache", seconds, env=http_env, cwd=cwd)
                ways[label] = (http_env, root / "elsewhere")
        for way_env, way_cwd in ways.values():
            wall(exec_argv, env=way_env, cwd=way_cwd)  # installs the tool and warms the caches
        tool = str(root / "home" / "tools" / "noop" / "1.0.0" / "main.py")
        direct: list[float] = []
        through: dict[str, list[float]] = {way: [] for way in ways}
        for _ in range(options.runs):
            direct.append(wall([PYTHON, tool], env=env, cwd=cwd))
            for way, (way_env, way_cwd) in ways.items():
                through[way].append(wall(exec_argv, env=way_env, cwd=way_cwd))
    print(f"machine: {machine()}")
    print(f"{'direct tool':34} {median_ms(direct):7.1f} ms")
    for way, samples in through.items():
        overhead = median_ms(samples) - median_ms(direct)
        print(f"{way:34} {median_ms(samples):7.1f} ms   overhead {overhead:7.1f} ms")
    overhead = median_ms(through["toolrun exec"]) - median_ms(direct)
    print(f"target: overhead < {TARGET_MS} ms: {verdict(overhead < TARGET_MS)}")
    return 0 if overhead < TARGET_MS else 1


if __name__ == "__main__":
    sys.exit(main())
