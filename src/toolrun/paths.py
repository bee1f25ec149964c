"""Where toolrun keeps its data, config and cache."""

from __future__ import annotations

import os
from pathlib import Path

from .records import record


@record(frozen=True)
class Paths:
    """Where toolrun keeps its data, configuration and cache."""

    data_dir: Path
    config_dir: Path
    cache_dir: Path

    @property
    def config_file(self) -> Path:
        return self.config_dir / "config.toml"

    @property
    def tools_dir(self) -> Path:
        return self.data_dir / "tools"

    @property
    def runs_dir(self) -> Path:
        return self.data_dir / "runs"

    @classmethod
    def from_environment(cls) -> Paths:
        """``TOOLRUN_HOME`` puts everything in one folder; otherwise platformdirs decides."""
        home = os.environ.get("TOOLRUN_HOME")
        if home:
            root = Path(home).expanduser().absolute()
            return cls(data_dir=root, config_dir=root, cache_dir=root / "cache")
        import platformdirs

        return cls(
            data_dir=Path(platformdirs.user_data_dir("toolrun", appauthor=False)),
            config_dir=Path(platformdirs.user_config_dir("toolrun", appauthor=False)),
            cache_dir=Path(platformdirs.user_cache_dir("toolrun", appauthor=False)),
        )
