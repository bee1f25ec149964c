"""The objects a command works with, built from the environment once per invocation.

Imports happen inside the properties: a command pays only for what it uses.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

from ..paths import Paths
from ..records import field, record

# `typing` costs milliseconds at start-up; annotations alone never need it at run time.
TYPE_CHECKING = False

if TYPE_CHECKING:
    from ..config import Config
    from ..engine import Engine
    from ..installer import Installer
    from ..registry import Registry
    from ..resolver import ToolResolver
    from ..store import Store
    from ..toolchain import Toolchain
    from .remote import RemoteRuns


@record
class Context:
    """What a command works with, each part built on first use."""

    paths: Paths
    cwd: Path
    offline: bool = False
    interrupted: list[str] = field(default_factory=list)  # runs found orphaned on opening
    remote: str | None = None  # a daemon's URL: runs are read and started there
    token: str | None = None
    cacert: str | None = None  # a CA file to trust for the daemon's certificate
    insecure: bool = False  # trust any certificate (a self-signed one, for trying it out)

    @classmethod
    def from_environment(
        cls,
        *,
        offline: bool = False,
        remote: str | None = None,
        token: str | None = None,
        cacert: str | None = None,
        insecure: bool = False,
    ) -> Context:
        import os

        return cls(
            Paths.from_environment(),
            Path.cwd(),
            offline,
            remote=remote or os.environ.get("TOOLRUN_REMOTE") or None,
            token=token or os.environ.get("TOOLRUN_TOKEN") or None,
            cacert=cacert or os.environ.get("TOOLRUN_CACERT") or None,
            insecure=insecure,
        )

    @cached_property
    def remote_runs(self) -> RemoteRuns:
        from .remote import RemoteRuns

        assert self.remote is not None
        return RemoteRuns(self.remote, self.token, cacert=self.cacert, insecure=self.insecure)

    @property
    def runs(self) -> Store | RemoteRuns:
        """Where runs are read: the daemon's with --remote, this machine's store otherwise."""
        return self.remote_runs if self.remote else self.store

    @cached_property
    def config(self) -> Config:
        from ..config import load_config

        return load_config(self.paths.config_file, cache_dir=self.paths.cache_dir)

    @cached_property
    def installer(self) -> Installer:
        from ..installer import Installer

        return Installer(self.paths.tools_dir)

    @cached_property
    def registries(self) -> list[Registry]:
        from ..registry import registries_from_config

        return registries_from_config(self.config, cwd=self.cwd, cache_dir=self.paths.cache_dir)

    @cached_property
    def resolver(self) -> ToolResolver:
        from ..resolver import ToolResolver

        offline = self.offline or bool(self.config.get("offline"))
        return ToolResolver(self.installer, self.registries, offline=offline)

    @cached_property
    def store(self) -> Store:
        from ..store import Store

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
        from ..engine import Engine, EngineSettings

        config = self.config
        settings = EngineSettings(
            output_cap=int(config.get("output_cap")),
            log_format=str(config.get("log_format")),
            kill_grace=float(config.get("kill_grace")),
            accept_env=tuple(config.get("accept_env")),
        )
        return Engine(self.store, self.resolver, settings)

    def toolchain_dirs(self) -> list[Path]:
        from ..toolchain import search_dirs

        return search_dirs(self.cwd, self.paths.config_dir)

    def load_toolchain(self, name: str) -> Toolchain:
        from ..toolchain import find_toolchain, load_toolchain

        return load_toolchain(find_toolchain(name, self.toolchain_dirs()))


def mark_interrupted(store: Store) -> list[str]:
    """Mark the runs whose owner died as interrupted, and end what their steps left running:
    nothing else will. Returns their ids."""
    dead = store.mark_interrupted()
    if dead:
        from ..process import end_left_processes

        end_left_processes(store.processes_left(dead))
    return dead
