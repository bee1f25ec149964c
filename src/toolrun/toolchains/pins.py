"""Which tool versions the toolchains pin: a step that names one version (``uexp==0.1.0``,
``version: "0.1.0"``), and every version a toolchain's lock (``NAME.lock`` beside
``NAME.yaml``, tools/lockfile.py) records. Updates show them, and never remove one."""

from __future__ import annotations

from pathlib import Path

from ..errors import ToolrunError
from ..tools.lockfile import lock_path, read_lock
from ..tools.versions import parse_spec
from .model import load_toolchain, toolchain_files

Pins = dict[tuple[str, str], tuple[str, ...]]
"""(tool name, version) -> what pins it: ``export-job.lock``, ``export-job.yaml: step push``."""


def pinned_versions(folders: list[Path], installed: dict[str, list[str]]) -> Pins:
    """The installed versions that a toolchain in ``folders``, or its lock, pins.

    Only installed versions are asked about: ``==0.1`` pins 0.1.0, and an exact spec is
    matched against real versions rather than turned back into text. A toolchain that does
    not load pins nothing here (``toolrun toolchain validate`` says why); a damaged lock
    neither (``toolrun lock --check`` says why).
    """
    found: dict[tuple[str, str], list[str]] = {}

    def pin(name: str, version: str, by: str) -> None:
        holders = found.setdefault((name, version), [])
        if by not in holders:
            holders.append(by)

    for path in toolchain_files(folders):
        try:
            toolchain = load_toolchain(path)
        except ToolrunError:
            continue
        for step in toolchain.steps:
            try:
                spec = parse_spec(step.spec_text)
            except ToolrunError:
                continue
            if not spec.is_exact:
                continue
            for version in installed.get(spec.name, []):
                if spec.allows(version, pre=True):
                    pin(spec.name, version, f"{path.name}: step {step.id}")
        try:
            lock = read_lock(lock_path(path))
        except ToolrunError:
            lock = None
        for tool in lock.tools.values() if lock is not None else ():
            pin(tool.name, tool.version, lock_path(path).name)
    return {key: tuple(holders) for key, holders in found.items()}
