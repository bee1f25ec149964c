"""Fixtures: every test gets its own TOOLRUN_HOME, and the real home is out of reach."""

from __future__ import annotations

import contextlib
import functools
import http.server
import os
import subprocess
import sys
import threading
from collections.abc import Awaitable, Callable, Iterable, Iterator
from pathlib import Path, PurePath
from typing import TYPE_CHECKING, Any, Protocol

import pytest

if TYPE_CHECKING:
    from textual.app import App
    from textual.pilot import Pilot

REPO = Path(__file__).resolve().parent.parent


# -- the fixtures' types, for the tests' signatures --------------------------------------------


class Toolrun(Protocol):
    """The ``toolrun`` fixture: :func:`run_toolrun` in ./ (``workdir``) unless told ``cwd``."""

    def __call__(
        self,
        *args: str,
        cwd: Path | None = ...,
        env: dict[str, str] | None = ...,
        timeout: float = ...,
    ) -> subprocess.CompletedProcess[str]: ...


WriteToolchain = Callable[[str, str], Path]
"""The ``toolchain`` fixture: (name, YAML text) -> the path of ./toolchains/NAME.yaml."""

Answered = list[tuple[str, int, dict[str, str]]]
"""What a ``serve`` server answered: (path, status, request headers) for each request."""


class Serve(Protocol):
    """The ``serve`` fixture: folder -> base URL; ``answered`` lists every request served."""

    answered: Answered

    def __call__(self, directory: Path) -> str: ...


class StartDaemon(Protocol):
    """The ``daemon`` fixture: start ``toolrun daemon ARGS`` in ./; stopped at the end."""

    def __call__(self, *args: str, env: dict[str, str] | None = ...) -> DaemonProcess: ...


class SnapCompare(Protocol):
    """pytest-textual-snapshot's ``snap_compare`` fixture: the app's screen matches the SVG
    kept in __snapshots__. (The plugin declares it ``Callable[[str | PurePath], bool]``, which
    leaves out the keywords it takes.)"""

    def __call__(
        self,
        app: str | PurePath | App[Any],
        press: Iterable[str] = ...,
        terminal_size: tuple[int, int] = ...,
        run_before: Callable[[Pilot[Any]], Awaitable[None] | None] | None = ...,
    ) -> bool: ...


@pytest.fixture(autouse=True)
def toolrun_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("TOOLRUN_HOME", str(home))
    monkeypatch.delenv("TOOLRUN_DEBUG", raising=False)

    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError("a test reached for the real user directories")

    import platformdirs

    for name in ("user_data_dir", "user_config_dir", "user_cache_dir"):
        monkeypatch.setattr(platformdirs, name, forbidden)
    return home


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty current directory, so the repo's ./registry is not picked up by accident."""
    folder = tmp_path / "work"
    folder.mkdir()
    monkeypatch.chdir(folder)
    return folder


def run_toolrun(
    *args: str, cwd: Path | None = None, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """Run the real CLI in a subprocess, as a user would."""
    return subprocess.run(
        [sys.executable, "-m", "toolrun", *args],
        cwd=cwd,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        encoding="utf-8",
        errors="replace",
        timeout=timeout,
    )


@pytest.fixture
def toolrun(workdir: Path) -> Toolrun:
    return functools.partial(run_toolrun, cwd=workdir)


def write_tool(
    registry: Path,
    name: str,
    version: str,
    *,
    script: str | None = None,
    extra_files: dict[str, bytes] | None = None,
    manifest_extra: str = "",
    hash_files: bool = True,
) -> Path:
    """A bundled Python tool in a folder registry, with its [files] hashed."""
    from toolrun.tools.publish import rehash

    folder = registry / name / version
    folder.mkdir(parents=True)
    body = script or f"import sys\nprint('{name} {version}', *sys.argv[1:])\n"
    (folder / "main.py").write_text(body, encoding="utf-8")
    for relative, data in (extra_files or {}).items():
        (folder / relative).parent.mkdir(parents=True, exist_ok=True)
        (folder / relative).write_bytes(data)
    (folder / "tool.toml").write_text(
        f'name = "{name}"\nversion = "{version}"\ndescription = "test tool {name}"\n'
        f'command = ["{{python}}", "{{tool_dir}}/main.py"]\n{manifest_extra}\n[files]\n',
        encoding="utf-8",
    )
    if hash_files:
        rehash(folder)
    return folder


@pytest.fixture
def registry(workdir: Path) -> Path:
    """./registry in the current directory with hello 1.0.0, 1.1.0, 2.0.0-rc.1 and greet 0.1.0."""
    root = workdir / "registry"
    for version in ("1.0.0", "1.1.0", "2.0.0-rc.1"):
        write_tool(root, "hello", version)
    write_tool(root, "greet", "0.1.0")
    return root


class _RecordingHandler(http.server.SimpleHTTPRequestHandler):
    """Answers quietly and notes (path, status, request headers) of every request."""

    answered: Answered

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        self.answered.append((self.path, int(code), dict(self.headers)))

    def log_message(self, format: str, *args: object) -> None:
        pass


class _Servers:
    """The ``serve`` fixture's function (a :class:`Serve`), and the servers it started."""

    def __init__(self) -> None:
        self.servers: list[http.server.ThreadingHTTPServer] = []
        self.answered: Answered = []

    def __call__(self, directory: Path) -> str:
        recording = type("Handler", (_RecordingHandler,), {"answered": self.answered})
        handler = functools.partial(recording, directory=str(directory))
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        self.servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}/"


@pytest.fixture
def serve() -> Iterator[Serve]:
    """Serve folders over HTTP on 127.0.0.1; returns a function folder -> base URL. Its
    ``answered`` lists every request served: (path, status, request headers)."""
    start = _Servers()
    yield start
    for server in start.servers:
        server.shutdown()
        server.server_close()


PROBE = Path(__file__).resolve().parent / "tools" / "probe.py"


@pytest.fixture
def probe(workdir: Path) -> Path:
    """./registry holding the misbehaving `probe` tool (1.0.0 and 2.0.0)."""
    root = workdir / "registry"
    for version in ("1.0.0", "2.0.0"):
        write_tool(
            root,
            "probe",
            version,
            script=PROBE.read_text(encoding="utf-8"),
            manifest_extra='accept_env = ["GREETING", "A", "PROBE_*"]',
        )
    return root


@pytest.fixture
def toolchain(workdir: Path) -> WriteToolchain:
    """Write ./toolchains/NAME.yaml; returns its path."""

    def write(name: str, text: str) -> Path:
        folder = workdir / "toolchains"
        folder.mkdir(exist_ok=True)
        path = folder / f"{name}.yaml"
        path.write_text(text, encoding="utf-8")
        return path

    return write


class DaemonProcess:
    """A real `toolrun daemon` on 127.0.0.1 (port chosen by the OS), its JSON log collected."""

    def __init__(self, args: list[str], cwd: Path, env: dict[str, str] | None = None) -> None:
        import json

        if "--loop" not in args:
            # asyncio's own loop, as a plain `pip install toolrun` runs; daemon_loop_test.py
            # runs the daemon under uvloop as well.
            args = ["--loop", "asyncio", *args]
        self.process = subprocess.Popen(
            [sys.executable, "-m", "toolrun", "daemon", "-p", "0", *args],
            cwd=cwd,
            env={**os.environ, **(env or {})},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            encoding="utf-8",
        )
        self.log: list[dict[str, object]] = []
        self.raw: list[str] = []
        self.url = ""
        listening = threading.Event()

        def read() -> None:
            assert self.process.stderr is not None
            for line in self.process.stderr:
                self.raw.append(line)
                try:
                    record = json.loads(line)
                except ValueError:
                    continue
                self.log.append(record)
                if record.get("event") == "listening":
                    self.url = str(record["url"])
                    listening.set()
            listening.set()

        threading.Thread(target=read, daemon=True).start()
        if not listening.wait(30) or not self.url:
            self.process.kill()
            raise AssertionError("the daemon did not start:\n" + "".join(self.raw))

    def stop(self, timeout: float = 30) -> int:
        import signal

        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise

    def wait_for(self, name: str, seconds: float = 10) -> dict[str, object]:
        import time

        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            found = self.events(name)
            if found:
                return found[0]
            time.sleep(0.02)
        raise AssertionError(f"the daemon never logged {name!r}:\n" + "".join(self.raw))

    def events(self, name: str) -> list[dict[str, object]]:
        return [record for record in self.log if record.get("event") == name]


@pytest.fixture
def daemon(workdir: Path, probe: Path) -> Iterator[StartDaemon]:
    """Start daemons in ./ (which holds the probe registry); each is stopped at the end."""
    started: list[DaemonProcess] = []

    def start(*args: str, env: dict[str, str] | None = None) -> DaemonProcess:
        process = DaemonProcess(list(args), workdir, env)
        started.append(process)
        return process

    yield start
    for process in started:
        if process.process.poll() is None:
            # SIGTERM, as an operator would: the daemon's coverage data is written only then.
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.stop(timeout=5)
