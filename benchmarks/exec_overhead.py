"""What `toolrun exec` adds to running a tool: target under 100 ms median (issue 3).

Runs a do-nothing Python tool directly and through `toolrun exec` (which records the run in
the history), interleaved in one run, 30 times each, and reports the medians and the difference.
The tool comes from a folder registry (`./registry`), as in the target.

With `--http` the registry is a static HTTP tree instead (`toolrun registry build`, served on
127.0.0.1 by the standard library's server), as a team would set it up, and two more ways are
measured beside the others: with the registry's index reused (the default `registry_cache`),
and with `registry_cache` 0, where every run checks the index with a conditional GET.

With `--baseline DIR` (the source tree of another commit: `git worktree add /tmp/before REV`)
that tree's `toolrun exec` runs in the same loop, and this tree's beside it in the same way
(`python -m toolrun` with PYTHONPATH, each in a home of its own): on a machine whose speed
changes from one minute to the next, only such pairs tell a change in the code from the noise.
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
    parser.add_argument("--baseline", type=Path, help="another commit's source tree")
    options = parser.parse_args()
    exec_argv = [TOOLRUN, "exec", "noop", "--"]
    module_argv = [PYTHON, "-m", "toolrun", "exec", "noop", "--"]
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        cwd = root / "cwd"
        write_tool(cwd / "registry", "noop", "1.0.0", "pass\n")
        env = environment(root / "home")
        ways = {"toolrun exec": (exec_argv, env, cwd)}
        if options.baseline:
            here = Path(__file__).resolve().parent.parent
            for label, tree in (("this tree", here), ("baseline", options.baseline.resolve())):
                tree_env = environment(root / f"{label}-home")
                tree_env["PYTHONPATH"] = str(tree / "src")
                ways[f"python -m toolrun exec, {label}"] = (module_argv, tree_env, cwd)
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
                ways[label] = (exec_argv, http_env, root / "elsewhere")
        for argv, way_env, way_cwd in ways.values():
            wall(argv, env=way_env, cwd=way_cwd)  # installs the tool and warms the caches
        tool = str(root / "home" / "tools" / "noop" / "1.0.0" / "main.py")
        direct: list[float] = []
        through: dict[str, list[float]] = {way: [] for way in ways}
        for _ in range(options.runs):
            direct.append(wall([PYTHON, tool], env=env, cwd=cwd))
            for way, (argv, way_env, way_cwd) in ways.items():
                through[way].append(wall(argv, env=way_env, cwd=way_cwd))
    print(f"machine: {machine()}")
    print(f"{'direct tool':38} {median_ms(direct):7.1f} ms")
    for way, samples in through.items():
        overhead = median_ms(samples) - median_ms(direct)
        print(f"{way:38} {median_ms(samples):7.1f} ms   overhead {overhead:7.1f} ms")
    overhead = median_ms(through["toolrun exec"]) - median_ms(direct)
    print(f"target: overhead < {TARGET_MS} ms: {verdict(overhead < TARGET_MS)}")
    return 0 if overhead < TARGET_MS else 1


if __name__ == "__main__":
    sys.exit(main())
