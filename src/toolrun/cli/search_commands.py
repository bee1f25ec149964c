"""``toolrun tool search WORD``: tools by name or description, installed and offered."""

from __future__ import annotations

from ..errors import UsageError
from ..tools.search import search_tools
from .context import Context
from .output import info, print_json, print_table
from .tool_commands import _flush_warnings


def search(ctx: Context, word: str, *, as_json: bool = False) -> None:
    if not word.strip():
        raise UsageError("give a word to look for, e.g. toolrun tool search export")
    ctx.resolver.refresh()  # asked to search: the registries' own answer, not a kept copy
    found = search_tools(word.strip(), ctx.installer, ctx.resolver)
    _flush_warnings(ctx)
    if as_json:
        from ..json_views import matches_json  # msgspec: for --json only

        print_json(matches_json(found))
        return
    if not found:
        info(f"no tool's name or description holds {word.strip()!r}")
        return
    print_table(
        ["name", "version", "installed", "registry", "description"],
        [
            [
                f.name,
                f.version,
                ", ".join(f.installed),
                f.registry or "(installed only)",
                f.description,
            ]
            for f in found
        ],
    )
