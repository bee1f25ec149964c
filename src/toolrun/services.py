"""The composition root: the objects toolrun works with, built from the environment once per
process, for the CLI, the TUI and the daemon alike.

Imports happen inside the properties: a command pays only for what it uses.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

from .paths import Paths

# `typing` costs milliseconds at start-up; annotations alone never need it at run time.
TYPE_CHECKING = False

if TYPE_CHECKING:
    from .automation.notifier import Notifier
    from .config import Config
    from .history.store import Store
    from .runs.engine import Engine
    from .toolchains.model import Toolchain
    from .tools.installer import Installer
    from .tools.registry import Registry
    from .tools.resolver import ToolResolver


class Services:
    """The paths, config, store, registries, resolver and engine, each built on first use."""

    def __init__(self, paths: Paths, cwd: Path, offline: bool = False) -> None:
        self.paths = paths
        self.cwd = cwd
        self.offline = offline
        self.interrupted: list[str] = []  # runs found orphaned on opening the store

    @classmethod
    def from_environment(cls, *, offline: bool = False) -> Services:
        return cls(Paths.from_environment(), Path.cwd(), offline)

    @cached_property
    def config(self) -> Config:
        from .config import load_config

        return load_config(self.paths.config_file, cache_dir=self.paths.cache_dir)

    @cached_property
    def installer(self) -> Installer:
        from .tools.installer import Installer

        return Installer(self.paths.tools_dir)

    @cached_property
    def registries(self) -> list[Registry]:
        from .tools.registry import registries_from_config

        return registries_from_config(self.config, cwd=self.cwd, cache_dir=self.paths.cache_dir)

    @cached_property
    def resolver(self) -> ToolResolver:
        from .tools.resolver import ToolResolver

        offline = self.offline or bool(self.config.get("offline"))
        return ToolResolver(self.installer, self.registries, offline=offline)

    @cached_property
    def store(self) -> Store:
        from .history.store import Store

        store = Store(self.paths.data_dir)
        # Any toolrun that opens the store finds the runs whose owner died and says so.
        self.interrupted = mark_interrupted(store)
        return store

    def close(self) -> None:
        """Close the store if the command opened it. Python would not at exit: the objects
        toolrun made are frozen out of the last collection (see __main__), and a store left
        open makes the next toolrun read through its write-ahead log to recover it."""
        if "store" in self.__dict__:
            self.store.close()

    @cached_property
    def engine(self) -> Engine:
        from .executors.local import LocalExecutor
        from .runs.engine import Engine, EngineSettings

        config = self.config
        settings = EngineSettings(
            output_cap=int(config.get("output_cap")),
            log_format=str(config.get("log_format")),
            kill_grace=float(config.get("kill_grace")),
            accept_env=tuple(config.get("accept_env")),
            pause_limit=float(config.get("pause_limit")),
            default_timeout=config.get("default_timeout") or None,
            default_step_timeout=config.get("default_step_timeout") or None,
        )
        local = LocalExecutor(orphan_grace=settings.orphan_grace, kill_grace=settings.kill_grace)
        engine = Engine(self.store, self.resolver, settings, executor=local, blocking=local)
        if self.notifier is not None:
            engine.on_finished.append(self.notifier.run_finished)
        return engine

    @cached_property
    def notifier(self) -> Notifier | None:
        """Records (and in a terminal, sends) notifications as runs end, when config.toml
        says whom to tell; None otherwise, and nothing of it is imported."""
        tables = self.config.tables
        if not (tables.get("notify") or tables.get("channels")):
            return None
        from .automation.notifier import Notifier

        return Notifier(self.store, self.config)

    def toolchain_dirs(self) -> list[Path]:
        from .toolchains.model import search_dirs

        return search_dirs(self.cwd, self.paths.config_dir)

    def load_toolchain(self, name: str) -> Toolchain:
        from .toolchains.model import find_toolchain, load_toolchain

        return load_toolchain(find_toolchain(name, self.toolchain_dirs()))


def mark_interrupted(store: Store) -> list[str]:
    """Mark the runs whose owner died as interrupted, and end what their steps left running:
    nothing else will. Returns their ids."""
    dead = store.mark_interrupted()
    if dead:
        from .executors.local import LocalExecutor
        from .executors.protocol import Placement

        left = store.processes_left(dead)
        LocalExecutor.end_left(
            [Placement("local", pid, started, box) for pid, started, box in left]
        )
    return dead
