"""Start-up of a WASM step against the same work as a native process (issue 17).

Two measures, each the median of ``--runs``, WASM and native interleaved in one loop:

- ``toolrun exec``, end to end: the shipped linecount (registry/linecount, run in wasmtime)
  and the system's ``wc -l`` (a system tool), each asked to count a file that is not in the
  workspace, so both start, fail to open it, say so and exit 1;
- the executor alone, in this process: one attempt from its launch to its ending, linecount
  and ``wc -l`` counting the same small file in one workspace. The first WASM attempt pays
  for importing wasmtime and compiling the module, and is shown on its own; the others reuse
  the compiled module.

Not part of the test suite: `python benchmarks/wasm.py [--runs N]`.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

from common import TOOLRUN, environment, machine, median_ms, wall

REPO = Path(__file__).resolve().parent.parent
RUNS = 20


def system_tool(root: Path) -> None:
    folder = root / "wc" / "1.0.0"
    folder.mkdir(parents=True)
    (folder / "tool.toml").write_text(
        'name = "wc"\nversion = "1.0.0"\nkind = "system"\ncommand = ["wc"]\n\n[files]\n',
        encoding="utf-8",
    )


def through_exec(root: Path, runs: int) -> tuple[float, float]:
    registry = root / "registry"
    shutil.copytree(REPO / "registry" / "linecount", registry / "linecount")
    system_tool(registry)
    env = environment(root / "home")
    wasm = [TOOLRUN, "exec", "linecount", "--", "missing.txt"]
    native = [TOOLRUN, "exec", "wc", "--", "-l", "missing.txt"]
    for argv in (wasm, native):  # installs, and warms the file cache
        wall(argv, env=env, cwd=root)
    wasm_times: list[float] = []
    native_times: list[float] = []
    for _ in range(runs):
        wasm_times.append(wall(wasm, env=env, cwd=root))
        native_times.append(wall(native, env=env, cwd=root))
    return median_ms(wasm_times), median_ms(native_times)


def one_attempt(executor: object, launch: object) -> float:
    from toolrun.executors.local import LocalExecutor
    from toolrun.executors.protocol import Launch, Sink

    assert isinstance(executor, LocalExecutor) and isinstance(launch, Launch)
    lines: list[str] = []
    started = time.perf_counter()
    attempt = executor.start_blocking(launch, Sink(lambda stream, got: lines.extend(got)))
    while not attempt.pump(0.05):
        pass
    ending = attempt.ending()
    took = time.perf_counter() - started
    assert ending.exit_code == 0 and "3" in lines[0], (ending, lines)
    return took


def in_process(root: Path, runs: int) -> tuple[float, float, float]:
    from toolrun.executors.local import LocalExecutor
    from toolrun.executors.protocol import Launch, Sandbox

    workspace = root / "work"
    workspace.mkdir()
    (workspace / "table.csv").write_text("id,name\n1,a\n2,b\n", encoding="utf-8")
    module = REPO / "registry" / "linecount" / "1.0.0" / "linecount.wasm"
    wc = shutil.which("wc") or "wc"

    def launch(argv: list[str], sandbox: Sandbox | None, n: int) -> Launch:
        return Launch(
            argv,
            {"PATH": "/usr/bin:/bin"},
            workspace,
            "utf-8",
            root / f"outputs.{n}.env",
            label=f"bench-{n}",
            sandbox=sandbox,
        )

    executor = LocalExecutor()
    sandbox = Sandbox(16 * 1024**2)
    first = one_attempt(executor, launch([str(module), "table.csv"], sandbox, 0))
    wasm_times: list[float] = []
    native_times: list[float] = []
    for n in range(1, runs + 1):
        wasm_times.append(one_attempt(executor, launch([str(module), "table.csv"], sandbox, n)))
        native_times.append(one_attempt(executor, launch([wc, "-l", "table.csv"], None, n)))
    return first * 1000, median_ms(wasm_times), median_ms(native_times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=RUNS)
    options = parser.parse_args()
    print(f"machine: {machine()}")
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        (root / "exec").mkdir()
        wasm, native = through_exec(root / "exec", options.runs)
        print(f"toolrun exec, median of {options.runs}:")
        print(f"  linecount (WASM)    {wasm:7.1f} ms")
        print(f"  wc -l (native)      {native:7.1f} ms")
        print(f"  WASM - native       {wasm - native:+7.1f} ms")
        (root / "direct").mkdir()
        first, wasm, native = in_process(root / "direct", options.runs)
        print(f"one attempt in this process (the executor alone), median of {options.runs}:")
        print(f"  first WASM attempt  {first:7.1f} ms  (imports wasmtime, compiles the module)")
        print(f"  linecount (WASM)    {wasm:7.1f} ms")
        print(f"  wc -l (native)      {native:7.1f} ms")
        print(f"  WASM - native       {wasm - native:+7.1f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
