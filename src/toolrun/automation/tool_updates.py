"""``auto_update``'s daily check, wherever it runs: after a CLI command (in a process of its
own, cli/auto_update.py) or in the daemon (daemon/automation.py), on the same stamp file, so a
machine asks each registry at most once a day whichever does it."""

from __future__ import annotations

import time
from pathlib import Path

from .. import __version__
from ..errors import ToolrunError
from ..tools.updates import DAY, Survey, read_stamp, stamp_path, survey, write_stamp

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ..tools.installer import Installer
    from ..tools.resolver import ToolResolver


def survey_here(
    resolver: ToolResolver, toolchain_dirs: list[Path], policy: str, *, pre: bool = False
) -> Survey:
    """What the registries offer beyond what is installed, with the toolchains' pins."""
    from ..toolchains.pins import pinned_versions
    from ..tools.self_upgrade import semver_of

    return survey(
        resolver,
        policy,
        current=semver_of(__version__),
        pre=pre,
        pins_for=lambda installed: pinned_versions(toolchain_dirs, installed),
    )


def check_due(data_dir: Path, now: float | None = None) -> bool:
    return read_stamp(stamp_path(data_dir)).is_due(time.time() if now is None else now)


def run_check(
    resolver: ToolResolver,
    installer: Installer,
    toolchain_dirs: list[Path],
    data_dir: Path,
    *,
    mode: str,
    policy: str,
) -> None:
    """Ask the registries, install when ``mode`` is ``install``, write the stamp; nothing when
    another process is checking or has just checked."""
    import filelock

    path = stamp_path(data_dir)
    lock = filelock.FileLock(f"{path}.lock", timeout=0)
    try:
        lock.acquire()
    except filelock.Timeout:
        return  # another check is under way
    try:
        if time.time() - read_stamp(path).checked_at < DAY:
            return  # another process has just made it
        problems: list[str] = []
        installed: list[str] = []
        outdated = []
        itself = None
        try:
            found = survey_here(resolver, toolchain_dirs, policy)
        except ToolrunError as error:
            problems.append(error.message)
        else:
            problems.extend(found.problems)
            itself = found.itself.wanted if found.itself is not None else None
            for row in found.outdated:
                if mode != "install":
                    outdated.append(row)
                    continue
                registry = found.available.versions[row.name][row.wanted]
                try:
                    installer.install(registry, row.name, row.wanted)
                except ToolrunError as error:
                    problems.append(error.message)
                    outdated.append(row)
                else:
                    installed.append(f"{row.name} {row.wanted}")
        stamp = read_stamp(path)  # as it is now: a command may have printed a notice since
        stamp.checked_at = time.time()
        stamp.mode = mode
        stamp.outdated = outdated
        stamp.installed = installed
        stamp.self_newer = itself
        stamp.problems = problems
        write_stamp(path, stamp)
    finally:
        lock.release()
