"""``toolrun --version --verbose``: what this toolrun is and how it runs tools here."""

from __future__ import annotations

import sys


def print_about() -> int:
    from .. import __version__
    from ..executors.containment import describe_containment
    from ..paths import Paths

    paths = Paths.from_environment()
    print(f"toolrun {__version__}")
    print(f"python: {sys.version.split()[0]} ({sys.executable})")
    print(f"platform: {sys.platform}")
    print(f"data: {paths.data_dir}")
    print(f"config: {paths.config_file}")
    print(describe_containment())
    return 0
