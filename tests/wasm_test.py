"""WASM tools: a module run by wasmtime with WASI, in a sandbox that sees only the run's
workspace (and the folders its manifest declares), the env its step gives, a memory cap, and
an epoch deadline for timeouts and cancels; its output streams like a process's."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import wasmtime
from conftest import REPO, StartDaemon, Toolrun, WriteToolchain, run_toolrun, write_tool

from toolrun.errors import ConfigError
from toolrun.tools.manifest import (
    DEFAULT_WASM_MEMORY,
    WasmSettings,
    manifest_from_dict,
    manifest_from_receipt,
    manifest_to_dict,
)

WASI = "wasi_snapshot_preview1"
WRITE = f'(import "{WASI}" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))'
EXIT = f'(import "{WASI}" "proc_exit" (func $exit (param i32)))'

# Prints "ready", then spins until the epoch ends it.
SPIN = f"""(module {WRITE}
  (memory (export "memory") 1)
  (data (i32.const 16) "ready\\n")
  (func (export "_start")
    (i32.store (i32.const 0) (i32.const 16)) (i32.store (i32.const 4) (i32.const 6))
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))
    (loop $forever (br $forever))))"""

# Grows its memory a page at a time until refused, then aborts as a C program would.
GROW = """(module (memory (export "memory") 1)
  (func (export "_start")
    (loop $more (br_if $more (i32.ne (memory.grow (i32.const 1)) (i32.const -1))))
    unreachable))"""

BIG = '(module (memory (export "memory") 100) (func (export "_start")))'  # 6.25 MB to start

# Says "bye" on stderr and exits 3.
BYE = f"""(module {WRITE} {EXIT}
  (memory (export "memory") 1)
  (data (i32.const 16) "bye\\n")
  (func (export "_start")
    (i32.store (i32.const 0) (i32.const 16)) (i32.store (i32.const 4) (i32.const 4))
    (drop (call $fd_write (i32.const 2) (i32.const 0) (i32.const 1) (i32.const 8)))
    (call $exit (i32.const 3))))"""

# Prints each argument, then each variable of its env, one a line.
SHOW = f"""(module {WRITE}
  (import "{WASI}" "args_sizes_get" (func $args_sizes (param i32 i32) (result i32)))
  (import "{WASI}" "args_get" (func $args_get (param i32 i32) (result i32)))
  (import "{WASI}" "environ_sizes_get" (func $env_sizes (param i32 i32) (result i32)))
  (import "{WASI}" "environ_get" (func $env_get (param i32 i32) (result i32)))
  (memory (export "memory") 4)
  (data (i32.const 100) "\\n")
  (func $print (param $at i32) (local $end i32)
    (local.set $end (local.get $at))
    (block $done (loop $next
      (br_if $done (i32.eqz (i32.load8_u (local.get $end))))
      (local.set $end (i32.add (local.get $end) (i32.const 1))) (br $next)))
    ;; Two writes: WASI may write only the first of several buffers, and wasmtime does.
    (i32.store (i32.const 0) (local.get $at))
    (i32.store (i32.const 4) (i32.sub (local.get $end) (local.get $at)))
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 16)))
    (i32.store (i32.const 0) (i32.const 100)) (i32.store (i32.const 4) (i32.const 1))
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 16))))
  (func $each (param $count i32) (param $pointers i32) (local $i i32)
    (block $done (loop $next
      (br_if $done (i32.ge_u (local.get $i) (local.get $count)))
      (call $print
        (i32.load (i32.add (local.get $pointers) (i32.mul (local.get $i) (i32.const 4)))))
      (local.set $i (i32.add (local.get $i) (i32.const 1))) (br $next))))
  (func (export "_start")
    (drop (call $args_sizes (i32.const 20) (i32.const 24)))
    (drop (call $args_get (i32.const 1024) (i32.const 8192)))
    (call $each (i32.load (i32.const 20)) (i32.const 1024))
    (drop (call $env_sizes (i32.const 20) (i32.const 24)))
    (drop (call $env_get (i32.const 4096) (i32.const 65536)))
    (call $each (i32.load (i32.const 20)) (i32.const 4096))))"""


# Sleeps a minute in one host call (poll_oneoff on the monotonic clock), out of the epoch's reach.
NAP = f"""(module
  (import "{WASI}" "poll_oneoff" (func $poll (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "_start")
    (i64.store (i32.const 0) (i64.const 1))
    (i32.store8 (i32.const 8) (i32.const 0))
    (i32.store (i32.const 16) (i32.const 1))
    (i64.store (i32.const 24) (i64.const 60000000000))
    (drop (call $poll (i32.const 0) (i32.const 128) (i32.const 1) (i32.const 256)))))"""

# Makes made.txt in the folder preopened as fd 3 (the workspace), then tries the same in fd 5
# (its first read_only folder); exits with the WASI error that second try met (0: none).
POKE = f"""(module
  (import "{WASI}" "path_open"
    (func $open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  {EXIT}
  (memory (export "memory") 1)
  (data (i32.const 16) "made.txt")
  (func (export "_start")
    (drop (call $open (i32.const 3) (i32.const 0) (i32.const 16) (i32.const 8) (i32.const 1)
      (i64.const 64) (i64.const 0) (i32.const 0) (i32.const 0)))
    (call $exit (call $open (i32.const 5) (i32.const 0) (i32.const 16) (i32.const 8)
      (i32.const 1) (i64.const 64) (i64.const 0) (i32.const 0) (i32.const 0)))))"""


def write_wasm_tool(
    registry: Path,
    name: str,
    module: str | bytes,
    *,
    wasm_table: str = "",
    extra_files: dict[str, bytes] | None = None,
) -> Path:
    """A WASM tool in a folder registry: ``module`` as WAT text (assembled here) or bytes."""
    from toolrun.tools.publish import rehash

    folder = registry / name / "1.0.0"
    folder.mkdir(parents=True)
    data = wasmtime.wat2wasm(module) if isinstance(module, str) else module
    (folder / f"{name}.wasm").write_bytes(data)
    for relative, content in (extra_files or {}).items():
        (folder / relative).parent.mkdir(parents=True, exist_ok=True)
        (folder / relative).write_bytes(content)
    (folder / "tool.toml").write_text(
        f'name = "{name}"\nversion = "1.0.0"\nkind = "wasm"\n'
        f'command = ["{{tool_dir}}/{name}.wasm"]\n{wasm_table}\n[files]\n',
        encoding="utf-8",
    )
    rehash(folder)
    return folder


@pytest.fixture
def wasm_registry(workdir: Path) -> Path:
    """./registry with the shipped linecount, the test modules above, and a Python tool that
    writes files into the workspace (``make NAME:LINES...``)."""
    root = workdir / "registry"
    shutil.copytree(REPO / "registry" / "linecount", root / "linecount")
    for name, module in (("spin", SPIN), ("bye", BYE), ("show", SHOW), ("big", BIG)):
        write_wasm_tool(root, name, module)
    write_wasm_tool(root, "grow", GROW, wasm_table='[wasm]\nmemory = "1MB"')
    write_wasm_tool(root, "tight", BIG, wasm_table='[wasm]\nmemory = "1MB"')
    make = (
        "import sys\nfrom pathlib import Path\nfor arg in sys.argv[1:]:\n"
        "    name, lines = arg.split(':')\n"
        "    Path(name).write_text(''.join(f'{i}\\n' for i in range(int(lines))))\n"
    )
    write_tool(root, "make", "1.0.0", script=make)
    return root


def events_of(home: Path, run_id: str) -> list[dict[str, Any]]:
    """The run's events so far (none before its log is made)."""
    path = home / "runs" / run_id / "events.jsonl"
    if not path.exists():
        return []
    text = path.read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines()[: text.count("\n")]]


def last_run(toolrun: Toolrun) -> dict[str, Any]:
    runs: list[dict[str, Any]] = json.loads(toolrun("history", "--json").stdout)
    return runs[0]


def steps_of(toolrun: Toolrun, run_id: str) -> dict[str, dict[str, Any]]:
    shown = json.loads(toolrun("show", run_id, "--json").stdout)
    return {step["id"]: step for step in shown["steps"]}


def finished(events: list[dict[str, Any]], step: str) -> dict[str, Any]:
    return next(e for e in events if e["kind"] == "step_finished" and e["step"] == step)


def output_lines(events: list[dict[str, Any]], step: str, stream: str = "stdout") -> list[str]:
    return [
        line
        for e in events
        if e["kind"] == "output" and e["step"] == step and e["stream"] == stream
        for line in e["lines"]
    ]


# A run of one plain step runs on the CLI's thread (the executor's blocking form); with a
# second step, in the event loop. Timeouts and cancels are tested both ways.
DRIVERS = {"threaded": "", "event-loop": "\n  - later: {cmd: bye, needs: []}"}


@pytest.fixture(params=list(DRIVERS))
def second_step(request: pytest.FixtureRequest) -> str:
    return DRIVERS[request.param]


# -- the manifest -----------------------------------------------------------------------------


def manifest(**fields: Any) -> dict[str, Any]:
    return {
        "name": "w",
        "version": "1.0.0",
        "kind": "wasm",
        "command": ["{tool_dir}/w.wasm"],
        "files": {"w.wasm": "0" * 64},
        **fields,
    }


def test_a_wasm_manifest_has_its_sandbox_with_defaults() -> None:
    plain = manifest_from_dict(manifest(), source="t")
    assert plain.is_wasm and plain.wasm == WasmSettings(DEFAULT_WASM_MEMORY, ())
    given = manifest_from_dict(
        manifest(wasm={"memory": "64MB", "read_only": ["{tool_dir}/data", "/srv/tables"]}),
        source="t",
    )
    assert given.wasm == WasmSettings(64 * 1024**2, ("{tool_dir}/data", "/srv/tables"))
    assert given.wasm.folders(Path("/tools/w")) == (Path("/tools/w/data"), Path("/srv/tables"))
    assert manifest_from_receipt(manifest_to_dict(given)) == given


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"wasm": {"memory": "lots"}}, "field 'wasm.memory': 'lots' is not a size such as"),
        ({"wasm": {"memory": "10GB"}}, "at most 4GB (wasm32)"),
        ({"wasm": {"read_only": ["data"]}}, "'data': an absolute folder, or one under {tool_dir}/"),
        ({"wasm": {"read_only": ["{tool_dir}/../x"]}}, "'..' is not allowed"),
        ({"wasm": {"stack": 1}}, "field 'wasm.stack': unknown field (known: memory, read_only)"),
        ({"wasm": "big"}, "field 'wasm': must be a table"),
        ({"command": ["w.wasm"]}, 'starts with the module, "{tool_dir}/NAME.wasm"'),
        ({"command": ["{tool_dir}/other.wasm"]}, "a file listed in [files]"),
        ({"kind": "bundled", "wasm": {}}, 'only a tool of kind = "wasm" has a [wasm] table'),
    ],
)
def test_a_bad_wasm_manifest_says_which_field(fields: dict[str, Any], expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        manifest_from_dict(manifest(**fields), source="t")
    assert expected in caught.value.message


# -- running ----------------------------------------------------------------------------------


def test_the_shipped_linecount_counts_what_the_steps_before_made(
    wasm_registry: Path, toolchain: WriteToolchain, toolrun: Toolrun, toolrun_home: Path
) -> None:
    toolchain(
        "count",
        "toolchain:\n"
        "  - make: {cmd: make, args: ['a.txt:3', 'b.txt:40000']}\n"
        "  - count: {cmd: linecount, args: [a.txt, ./b.txt, '${{ run.workspace }}/a.txt']}\n"
        "  - after: {cmd: show, args: ['${{ steps.count.outputs.total }}']}\n",
    )
    result = toolrun("run", "count")
    assert result.returncode == 0, result.stdout + result.stderr
    run_id = last_run(toolrun)["id"]
    events = events_of(toolrun_home, run_id)
    workspace = toolrun_home / "runs" / run_id / "work"
    assert output_lines(events, "count") == [
        "a.txt: 3 lines",
        "./b.txt: 40000 lines",
        f"{workspace}/a.txt: 3 lines",
        "total: 40006 lines",
    ]
    assert finished(events, "count")["outputs"] == {"total": "40006", "files": "3"}
    assert output_lines(events, "after")[1] == "40006"
    # $TOOLRUN_OUTPUT was a file in the workspace, read and taken away once the step ended.
    assert sorted(p.name for p in workspace.iterdir()) == ["a.txt", "b.txt"]
    assert steps_of(toolrun, run_id)["count"]["exit_code"] == 0


def test_nothing_outside_its_folders_can_be_read(
    wasm_registry: Path, toolrun: Toolrun, toolrun_home: Path
) -> None:
    passwd = "/etc/passwd" if Path("/etc/passwd").exists() else str(REPO / "README.md")
    escapes = [passwd, "../../../../../../etc/passwd", str(REPO / "README.md")]
    result = toolrun("exec", "linecount", "--", *escapes)
    assert result.returncode == 1
    assert result.stderr.splitlines()[: len(escapes)] == [
        f"linecount: {path}: outside the folders this tool may read (the sandbox refused it)"
        for path in escapes
    ]
    assert result.stdout == "total: 0 lines\n"
    # Not even its own folder: only what the manifest declares.
    module = toolrun_home / "tools" / "linecount" / "1.0.0" / "linecount.wat"
    own = toolrun("exec", "linecount", "--", str(module))
    assert "outside the folders this tool may read" in own.stderr


def test_folders_the_manifest_declares_are_readable_not_writable(
    wasm_registry: Path, toolrun: Toolrun, toolrun_home: Path
) -> None:
    linecount = (REPO / "registry" / "linecount" / "1.0.0" / "linecount.wasm").read_bytes()
    write_wasm_tool(
        wasm_registry,
        "reader",
        linecount,
        wasm_table='[wasm]\nread_only = ["{tool_dir}/data"]',
        extra_files={"data/table.csv": b"id,name\n1,a\n2,b\n", "secret.txt": b"x\n"},
    )
    folder = toolrun_home / "tools" / "reader" / "1.0.0"
    table, secret = folder / "data" / "table.csv", folder / "secret.txt"
    result = toolrun("exec", "reader", "--", str(table), str(secret))
    assert f"{table}: 3 lines" in result.stdout.splitlines()
    assert f"linecount: {secret}: outside the folders this tool may read" in result.stderr
    # Read-only: the workspace takes a new file, the declared folder does not.
    write_wasm_tool(
        wasm_registry,
        "poke",
        POKE,
        wasm_table='[wasm]\nread_only = ["{tool_dir}/data"]',
        extra_files={"data/table.csv": b"id\n"},
    )
    poked = toolrun("exec", "poke")
    assert poked.returncode in (2, 63, 76), poked  # EACCES, EPERM or ENOTCAPABLE
    assert not (toolrun_home / "tools" / "poke" / "1.0.0" / "data" / "made.txt").exists()
    assert (toolrun_home / "runs" / last_run(toolrun)["id"] / "work" / "made.txt").exists()


def test_only_the_env_the_step_gives_and_its_arguments(
    wasm_registry: Path, toolchain: WriteToolchain, toolrun: Toolrun, toolrun_home: Path
) -> None:
    toolchain(
        "env",
        "env: {FROM_TOOLCHAIN: here}\n"
        "toolchain:\n  - show: {cmd: show, args: [one, 'two words'], env: {FROM_STEP: '1'}}\n",
    )
    result = run_toolrun(
        "run", "env", cwd=toolrun_home.parent / "work", env={"HOME": "/root", "SECRET": "x"}
    )
    assert result.returncode == 0, result.stdout + result.stderr
    run_id = last_run(toolrun)["id"]
    lines = output_lines(events_of(toolrun_home, run_id), "show")
    assert lines[:3] == ["show.wasm", "one", "two words"]
    env = dict(line.split("=", 1) for line in lines[3:])
    workspace = toolrun_home / "runs" / run_id / "work"
    assert env["FROM_TOOLCHAIN"] == "here" and env["FROM_STEP"] == "1"
    assert env["TOOLRUN_WORKSPACE"] == str(workspace)
    assert Path(env["TOOLRUN_OUTPUT"]).parent == workspace
    assert not {"HOME", "PATH", "SECRET", "TOOLRUN_HOME"} & set(env)


def test_the_exit_code_is_proc_exits_and_stderr_passes_through(
    wasm_registry: Path, toolchain: WriteToolchain, toolrun: Toolrun, toolrun_home: Path
) -> None:
    result = toolrun("exec", "bye")
    assert (result.returncode, result.stdout, result.stderr) == (3, "", "bye\n")
    assert last_run(toolrun)["status"] == "failed"
    # Retried as any step is: each attempt a guest of its own.
    toolchain("again", "toolchain:\n  - bye: {cmd: bye, retries: {max: 1, delay: 0.1s}}\n")
    toolrun("run", "again")
    run_id = last_run(toolrun)["id"]
    ends = [e for e in events_of(toolrun_home, run_id) if e["kind"] == "step_finished"]
    assert [(e["attempt"], e["exit_code"]) for e in ends] == [(1, 3), (2, 3)]
    assert output_lines(events_of(toolrun_home, run_id), "bye", "stderr") == ["bye", "bye"]


def spinning(
    workdir: Path, toolrun: Toolrun, toolrun_home: Path
) -> tuple[subprocess.Popen[str], str]:
    """`toolrun run spin` in a process of its own, once its guest has said it is ready."""
    process = subprocess.Popen(
        [sys.executable, "-m", "toolrun", "run", "spin", "--plain"],
        cwd=workdir,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 30
    while True:
        if time.monotonic() > deadline:
            process.kill()
            raise AssertionError("the guest's line never reached the run's log")
        runs = json.loads(toolrun("history", "--json").stdout)
        if runs and output_lines(events_of(toolrun_home, runs[0]["id"]), "spin") == ["ready"]:
            return process, runs[0]["id"]
        time.sleep(0.05)


def test_output_streams_while_it_runs_and_a_cancel_from_another_process_ends_it(
    wasm_registry: Path,
    toolchain: WriteToolchain,
    toolrun: Toolrun,
    workdir: Path,
    toolrun_home: Path,
    second_step: str,
) -> None:
    toolchain("spin", f"toolchain:\n  - spin: {{cmd: spin}}{second_step}\n")
    process, run_id = spinning(workdir, toolrun, toolrun_home)
    try:
        events = events_of(toolrun_home, run_id)
        assert not any(e["kind"] == "step_finished" and e["step"] == "spin" for e in events)
        asked = time.monotonic()
        assert toolrun("cancel", run_id).returncode == 0
        out, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130, out + err
    assert time.monotonic() - asked < 5
    assert steps_of(toolrun, run_id)["spin"]["status"] == "cancelled"


def test_a_busy_loop_is_ended_by_its_timeout_within_a_fifth_of_a_second(
    wasm_registry: Path,
    toolchain: WriteToolchain,
    toolrun: Toolrun,
    toolrun_home: Path,
    second_step: str,
) -> None:
    toolchain("hot", f"toolchain:\n  - spin: {{cmd: spin, timeout: 0.5s}}{second_step}\n")
    result = toolrun("run", "hot")
    assert result.returncode == 1
    run_id = last_run(toolrun)["id"]
    ended = finished(events_of(toolrun_home, run_id), "spin")
    assert (ended["status"], ended["error"]) == ("timed_out", "step timed out after 0.5s")
    assert 0.5 <= ended["duration"] < 0.7


def test_a_guest_asleep_in_a_host_call_is_left_after_the_grace(
    wasm_registry: Path,
    toolchain: WriteToolchain,
    toolrun: Toolrun,
    toolrun_home: Path,
    second_step: str,
) -> None:
    """The epoch cannot reach into a host call: such a guest is given up on after
    ``kill_grace``, as a process that ignores the polite signal is killed then."""
    write_wasm_tool(wasm_registry, "nap", NAP)
    assert toolrun("config", "set", "kill_grace", "0.5").returncode == 0
    toolchain("nap", f"toolchain:\n  - nap: {{cmd: nap, timeout: 0.3s}}{second_step}\n")
    started = time.monotonic()
    result = toolrun("run", "nap")
    assert result.returncode == 1 and time.monotonic() - started < 20, result.stdout
    ended = finished(events_of(toolrun_home, last_run(toolrun)["id"]), "nap")
    assert (ended["status"], ended["error"]) == ("timed_out", "step timed out after 0.3s")
    assert 0.8 <= ended["duration"] < 1.5


def test_memory_past_the_cap_fails_with_the_reason(wasm_registry: Path, toolrun: Toolrun) -> None:
    grow = toolrun("exec", "grow")
    assert grow.returncode == 127, grow.stderr
    assert "wasm trap: wasm `unreachable` instruction executed" in grow.stderr
    assert "its memory reached its cap of 1 MB, where memory.grow fails" in grow.stderr
    tight = toolrun("exec", "tight")
    assert "cannot start" in tight.stderr
    assert "tight.wasm: it needs 6.25 MB of memory to start, more than its cap of 1 MB" in (
        tight.stderr
    )
    assert toolrun("exec", "big").returncode == 0  # within the default cap (256 MB)


def test_a_file_that_is_no_module_cannot_start(wasm_registry: Path, toolrun: Toolrun) -> None:
    write_wasm_tool(wasm_registry, "junk", b"\x7fELF not wasm")
    result = toolrun("exec", "junk")
    assert result.returncode == 127
    assert "cannot start junk.wasm: not a WebAssembly module" in result.stderr
    write_wasm_tool(wasm_registry, "lib", '(module (func (export "f")))')
    assert "lib.wasm: exports no _start (not a WASI command)" in toolrun("exec", "lib").stderr


def test_the_shipped_toolchain_runs_from_a_checkout(tmp_path: Path) -> None:
    checkout = tmp_path / "checkout"
    for name in ("registry", "toolchains", "examples"):
        shutil.copytree(REPO / name, checkout / name, ignore=shutil.ignore_patterns("__pycache__"))
    result = run_toolrun("run", "table-lines", "table=d02", cwd=checkout)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "count  | exp/quests.json: 23 lines" in result.stdout
    assert "installed linecount 1.0.0 from ./registry" in result.stderr


def test_the_shipped_module_is_built_from_its_source() -> None:
    folder = REPO / "registry" / "linecount" / "1.0.0"
    source = (folder / "linecount.wat").read_text(encoding="utf-8")
    assert wasmtime.wat2wasm(source) == (folder / "linecount.wasm").read_bytes()


def test_only_a_wasm_step_imports_wasmtime(wasm_registry: Path, workdir: Path) -> None:
    probe = (
        "import sys\n"
        "from toolrun.__main__ import main\n"
        "code = main(['exec', 'make', '--', 'a.txt:1'])\n"
        "print('WASMTIME', 'wasmtime' in sys.modules, 'CODE', code, file=sys.stderr)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=workdir, capture_output=True, text=True, timeout=60
    )
    assert "WASMTIME False CODE 0" in result.stderr, result.stderr


def test_exec_passes_a_guests_output_through_and_times_it_out(toolrun: Toolrun) -> None:
    write_wasm_tool(Path("registry"), "spin", SPIN)
    result = toolrun("exec", "--timeout", "0.3s", "spin")
    assert (result.returncode, result.stdout) == (124, "ready\n"), result.stderr


def test_the_daemon_runs_and_cancels_a_wasm_step(
    wasm_registry: Path, daemon: StartDaemon, toolrun_home: Path
) -> None:
    import httpx
    from daemon_seed_test import TIMEOUT, wait_ended

    server = daemon()
    with httpx.Client(base_url=server.url, timeout=TIMEOUT) as client:
        bye = client.get("/cmd/bye?onlyid=true").text
        run = wait_ended(client, bye)
        assert (run["status"], run["exit_code"]) == ("failed", 1)
        assert run["steps"][0]["exit_code"] == 3  # type: ignore[index]
        spinning = client.get("/cmd/spin?onlyid=true").text
        deadline = time.monotonic() + 30
        while output_lines(events_of(toolrun_home, spinning), "spin") != ["ready"]:
            assert time.monotonic() < deadline, "the guest's line never arrived"
            time.sleep(0.05)
        assert client.post(f"/api/v1/runs/{spinning}/cancel").status_code == 202
        assert wait_ended(client, spinning, 10)["status"] == "cancelled"


@pytest.mark.parametrize("pipes", [True, False], ids=["pipes", "callbacks"])
def test_both_ways_of_carrying_output_give_the_same_lines(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pipes: bool
) -> None:
    """Pipes where a file descriptor has a path, WASI's custom-output callbacks elsewhere
    (Windows): the executor's two forms, in this process, each way."""
    import asyncio

    from toolrun.executors.local import LocalExecutor
    from toolrun.executors.protocol import Launch, Sandbox, Sink
    from toolrun.executors.wasm import Guest

    monkeypatch.setattr(Guest, "use_pipes", pipes)
    module = tmp_path / "bye.wasm"
    module.write_bytes(wasmtime.wat2wasm(BYE))
    show = tmp_path / "show.wasm"
    show.write_bytes(wasmtime.wat2wasm(SHOW))
    workspace = tmp_path / "work"
    workspace.mkdir()

    def launch(path: Path, label: str) -> Launch:
        return Launch(
            [str(path), "x" * 100_000, "é"],
            {"A": "1"},
            workspace,
            "utf-8",
            tmp_path / "unused.env",
            label=label,
            sandbox=Sandbox(16 * 1024**2),
        )

    executor = LocalExecutor()
    got: dict[str, list[str]] = {"stdout": [], "stderr": []}
    sink = Sink(lambda stream, lines: got[stream].extend(lines))
    blocking = executor.start_blocking(launch(show, "b"), sink)
    while not blocking.pump(0.05):
        pass
    assert blocking.ending().exit_code == 0
    assert got["stdout"] == [
        "show.wasm",
        "x" * 65536,  # cut as a process's long lines are
        "x" * (100_000 - 65536),
        "é",
        "A=1",
        f"TOOLRUN_OUTPUT={workspace}/.toolrun-output.b.env",
    ]
    got["stdout"].clear()
    again = executor.start_blocking(launch(show, "b2"), sink)  # the module compiled once
    while not again.pump(0.05):
        pass
    assert again.ending().exit_code == 0 and got["stdout"][3] == "é"

    async def in_a_loop() -> int | None:
        attempt = await executor.start(launch(module, "a"), sink)
        return (await attempt.ended()).exit_code

    assert asyncio.run(in_a_loop()) == 3
    assert got["stderr"] == ["bye"]


def test_pause_now_says_a_wasm_step_could_not_be_frozen(
    wasm_registry: Path, toolchain: WriteToolchain, toolrun: Toolrun, workdir: Path,
    toolrun_home: Path,
) -> None:  # fmt: skip
    toolchain("spin", "toolchain:\n  - spin: {cmd: spin}\n")
    process, run_id = spinning(workdir, toolrun, toolrun_home)
    try:
        paused = toolrun("pause", run_id, "--now")
        assert paused.returncode == 0, paused.stderr
        assert "could not be frozen" in paused.stdout and "steps frozen" not in paused.stdout
        warnings = [e for e in events_of(toolrun_home, run_id) if e["kind"] == "message"]
        assert any("cannot freeze step spin" in e["text"] for e in warnings)
        assert toolrun("cancel", run_id).returncode == 0
        process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
