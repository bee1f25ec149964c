"""The objects a command works with, built from the environment once per invocation."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from ..config import Config, load_config
from ..installer import Installer
from ..paths import Paths
from ..registry import Registry, registries_from_config
from ..resolver import ToolResolver


@dataclass
class Context:
    paths: Paths
    cwd: Path
    offline: bool = False

    @classmethod
    def from_environment(cls, *, offline: bool = False) -> Context:
        return cls(Paths.from_environment(), Path.cwd(), offline)

    @cached_property
    def config(self) -> Config:
        return load_config(self.paths.config_file)

    @cached_property
    def installer(self) -> Installer:
        return Installer(self.paths.tools_dir)

    @cached_property
    def registries(self) -> list[Registry]:
        return registries_from_config(self.config, cwd=self.cwd)

    @cached_property
    def resolver(self) -> ToolResolver:
        offline = self.offline or bool(self.config.get("offline"))
        return ToolResolver(self.installer, self.registries, offline=offline)
