"""``toolrun tool outdated``: installed tools with newer versions within the update policy,
and toolrun itself (the domain is tools/updates.py)."""

from __future__ import annotations

from .. import __version__
from ..errors import UsageError
from ..tools.updates import POLICIES, Outdated, Survey, outdated_json
from .context import Context
from .output import info, print_json, print_table, warn


def survey_here(ctx: Context, policy: str, *, pre: bool = False) -> Survey:
    """What the registries offer beyond what is installed, with the toolchains' pins."""
    from ..automation.tool_updates import survey_here as survey_of

    return survey_of(ctx.resolver, ctx.toolchain_dirs(), policy, pre=pre)


def outdated(
    ctx: Context, *, policy: str | None = None, as_json: bool = False, pre: bool = False
) -> None:
    chosen = policy or str(ctx.config.get("update_policy"))
    if chosen not in POLICIES:
        raise UsageError(f"--policy must be one of {', '.join(POLICIES)}, not {chosen!r}")
    found = survey_here(ctx, chosen, pre=pre)
    for problem in found.problems:
        warn(f"{problem}; carrying on with the other registries")
    ctx.resolver.warnings.clear()
    if as_json:
        rows = [{**outdated_json(row), "self": False} for row in found.outdated]
        if found.itself is not None:
            rows.append({**outdated_json(_as_self(found.itself)), "self": True})
        print_json(rows)
        return
    if not found.outdated and found.itself is None:
        info(f"every installed tool is up to date (policy {chosen})")
        return
    table = [
        [row.name, row.installed, row.wanted, row.latest, row.registry, ", ".join(row.pinned_by)]
        for row in found.outdated
    ]
    if found.itself is not None:
        me = _as_self(found.itself)
        table.append(["toolrun (self)", me.installed, me.wanted, me.latest, me.registry, ""])
    print_table(["name", "installed", "wanted", "latest", "registry", "pinned by"], table)
    if found.outdated:
        wanted = " ".join(f"{row.name}=={row.wanted}" for row in found.outdated)
        info(f"policy {chosen}; to install them beside the old: toolrun tool install {wanted}")
    if found.itself is not None:
        info("upgrade toolrun itself: toolrun self upgrade")


def _as_self(row: Outdated) -> Outdated:
    """toolrun's row shows its version as pip writes it."""
    from ..records import replace

    return replace(row, installed=__version__)
