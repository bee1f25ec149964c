"""``toolrun lock TOOLCHAIN``: write, check or upgrade the toolchain's lock (the domain is
tools/lockfile.py)."""

from __future__ import annotations

from ..tools.lockfile import (
    Locking,
    build_lock,
    check_lock,
    check_offers,
    lock_path,
    parse_platforms,
    read_lock,
    write_lock,
)
from .context import Context
from .errors import ExitCode
from .output import info, warn


def lock(
    ctx: Context,
    name: str,
    *,
    platforms: str | None = None,
    check: bool = False,
    upgrade: bool = False,
) -> None:
    from ..toolchains.model import find_toolchain, load_toolchain

    path = find_toolchain(name, ctx.toolchain_dirs())
    toolchain = load_toolchain(path)
    locking = Locking(
        path, toolchain.sha256, tuple(dict.fromkeys(s.spec_text for s in toolchain.steps))
    )
    target = lock_path(path)
    previous = read_lock(target)
    if check:
        problems = check_lock(previous, locking)
        if previous is not None and platforms:
            # CI may insist on platforms the lock never named.
            wanted = parse_platforms(platforms)
            problems.extend(
                f"{tool.spec} has no digest for {platform}"
                for tool in previous.tools.values()
                for platform in wanted
                if platform not in tool.platforms
            )
        if previous is not None:
            problems.extend(check_offers(previous, ctx.resolver))
        for problem in problems:
            warn(f"{target}: {problem}")
        if problems:
            raise ExitCode(1)
        info(f"{target}: up to date")
        return
    if platforms:
        chosen = parse_platforms(platforms)
    elif previous is not None:
        chosen = previous.platforms  # relocking keeps the platforms it was made for
    else:
        chosen = parse_platforms(None)
    fresh = build_lock(locking, ctx.resolver, chosen, previous=None if upgrade else previous)
    write_lock(target, fresh)
    for tool in fresh.tools.values():
        info(f"locked {tool.spec}: {tool.name} {tool.version} from {tool.registry}")
    info(f"wrote {target} ({', '.join(chosen)})")
