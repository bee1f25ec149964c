"""Completion of names, answered before typer is imported: `toolrun run <TAB>` (toolchains),
`tool install <TAB>` and `exec <TAB>` (tools; `uexp@<TAB>` their versions), `show <TAB>` (recent
run ids). Typer and the app it builds cost a completion about 240 ms here, where a shell's
completion should feel instant; what this module does not answer (options, commands, any line
with an option in it) goes to typer as before, through the same shell scripts
(completions/), which speak typer's protocol.

Nothing here contacts a registry: an HTTP registry offers what its last kept index says.
"""

from __future__ import annotations

import os
import shlex
import sys
from collections.abc import Callable, Mapping

from .context import Context

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ..tools.registry import HttpRegistry, Registry

RUN_IDS = 30  # the most recent runs offered for `show <TAB>`

# (command path) -> what its first positional argument names
TOOLCHAIN, TOOL, INSTALLED, RUN = "toolchain", "tool", "installed", "run"
SLOTS: dict[tuple[str, ...], str] = {
    ("run",): TOOLCHAIN,
    ("lock",): TOOLCHAIN,
    ("toolchain", "show"): TOOLCHAIN,
    ("toolchain", "validate"): TOOLCHAIN,
    ("exec",): TOOL,
    ("tool", "install"): TOOL,
    ("tool", "versions"): TOOL,
    ("tool", "which"): INSTALLED,
    ("tool", "remove"): INSTALLED,
    ("tool", "uninstall"): INSTALLED,
    ("tool", "upgrade"): INSTALLED,
    ("tool", "verify"): INSTALLED,
    ("show",): RUN,
    ("logs",): RUN,
    ("result",): RUN,
    ("rerun",): RUN,
    ("cancel",): RUN,
    ("pause",): RUN,
    ("resume",): RUN,
}
# Commands whose every positional names the same kind (tool install A B C).
MANY = {("tool", "install"), ("tool", "remove"), ("tool", "uninstall"), ("tool", "upgrade"),
        ("tool", "verify"), ("toolchain", "validate")}  # fmt: skip


def words_of(shell: str, environ: Mapping[str, str]) -> tuple[list[str], str] | None:
    """The words before the cursor (the program's name left out) and the one being typed, as
    each of typer's shell scripts hands them over."""
    try:
        if shell == "bash":
            words = shlex.split(environ["COMP_WORDS"])
            cword = int(environ["COMP_CWORD"])
            return words[1:cword], words[cword] if cword < len(words) else ""
        line = environ.get("_TYPER_COMPLETE_ARGS", "")
        words = shlex.split(line)[1:]
        if shell == "powershell":
            typed = environ.get("_TYPER_COMPLETE_WORD_TO_COMPLETE", "")
            return (words[:-1] if typed else words), typed
        if words and not line.endswith(" "):
            return words[:-1], words[-1]
        return words, ""
    except (KeyError, ValueError):
        return None


def slot_for(before: list[str]) -> tuple[tuple[str, ...], str] | None:
    """The command and what its positional at the cursor names; None for anything else (an
    option anywhere, a second positional where one is taken): typer's to answer."""
    if any(word.startswith("-") for word in before):
        return None
    for length in (2, 1):
        path = tuple(before[:length])
        kind = SLOTS.get(path)
        if kind is None:
            continue
        given = before[length:]
        if given and path not in MANY:
            return None
        return path, kind
    return None


def candidates(ctx: Context, kind: str, typed: str) -> list[str]:
    if kind == TOOLCHAIN:
        return toolchain_names(ctx)
    if kind == RUN:
        return recent_run_ids(ctx)
    if "@" in typed:
        name = typed.split("@", 1)[0]
        return [f"{name}@{version}" for version in tool_versions(ctx, name, kind == TOOL)]
    installed = ctx.installer.names()
    if kind == INSTALLED:
        return installed
    return sorted({*installed, *offered_names(ctx)})


def toolchain_names(ctx: Context) -> list[str]:
    names: set[str] = set()
    for folder in ctx.toolchain_dirs():
        try:
            entries = os.scandir(folder)
        except OSError:
            continue
        with entries:
            for entry in entries:
                stem, dot, suffix = entry.name.rpartition(".")
                if dot and suffix in ("yaml", "yml") and stem and not stem.startswith("."):
                    names.add(stem)
    return sorted(names)


def recent_run_ids(ctx: Context) -> list[str]:
    import sqlite3

    path = ctx.paths.data_dir / "history.db"
    if not path.exists():
        return []
    try:
        with sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True, timeout=0.2) as db:
            rows = db.execute(
                "SELECT id FROM runs ORDER BY created_at DESC LIMIT ?", (RUN_IDS,)
            ).fetchall()
    except sqlite3.Error:
        return []
    return [row[0] for row in rows]


def offered_names(ctx: Context) -> set[str]:
    names: set[str] = set()
    for lookup in _lookups(ctx):
        names.update(lookup(None))
    return names


def tool_versions(ctx: Context, name: str, offered: bool) -> list[str]:
    from ..tools.versions import sorted_versions

    versions = set(ctx.installer.versions(name))
    if offered:
        for lookup in _lookups(ctx):
            versions.update(lookup(name))
    return list(reversed(sorted_versions(versions)))  # the newest first


def _lookups(ctx: Context) -> list[Callable[[str | None], list[str]]]:
    """For each registry: names (None) or a tool's versions, from disk alone."""
    from ..tools.registry import HttpRegistry

    lookups: list[Callable[[str | None], list[str]]] = []
    for registry in ctx.registries:
        if isinstance(registry, HttpRegistry):
            index = _kept_index(registry)
            if index is not None:
                lookups.append(_index_lookup(index))
        else:
            lookups.append(_registry_lookup(registry))
    return lookups


def _kept_index(registry: HttpRegistry) -> Mapping[str, Mapping[str, object]] | None:
    """An HTTP registry's index as last kept on disk, however old; never downloaded."""
    from ..errors import ToolrunError
    from ..tools.registry import parse_index

    copy = registry.cache.load(registry.index_url) if registry.cache else None
    if copy is None:
        return None
    try:
        return parse_index(copy.data, source=registry.index_url)
    except ToolrunError:
        return None


def _index_lookup(index: Mapping[str, Mapping[str, object]]) -> Callable[[str | None], list[str]]:
    def look(name: str | None) -> list[str]:
        return sorted(index if name is None else index.get(name, {}))

    return look


def _registry_lookup(registry: Registry) -> Callable[[str | None], list[str]]:
    from ..errors import ToolrunError

    def look(name: str | None) -> list[str]:
        try:
            return registry.tool_names() if name is None else registry.versions(name)
        except (ToolrunError, OSError):
            return []

    return look


def formatted(shell: str, values: list[str]) -> str:
    """The answer in the form typer's script for ``shell`` reads."""
    if shell == "zsh":
        if not values:
            return "_files"
        listed = "\n".join('"' + _zsh_escape(value) + '"' for value in values)
        return f"_arguments '*: :(({listed}))'"
    if shell == "powershell":
        return "\n".join(f"{value}::: " for value in values)
    return "\n".join(values)


def _zsh_escape(text: str) -> str:
    return (
        text.replace('"', '""')
        .replace("'", "''")
        .replace("$", "\\$")
        .replace("`", "\\`")
        .replace(":", r"\\:")
    )


def try_quick_complete(environ: Mapping[str, str]) -> int | None:
    """Answer a completion request for a name, or None to leave it to typer."""
    shell = environ.get("_TOOLRUN_COMPLETE", "").removeprefix("complete_")
    if shell not in ("bash", "zsh", "fish", "powershell"):
        return None
    given = words_of(shell, environ)
    if given is None:
        return None
    before, typed = given
    if typed.startswith("-"):
        return None
    slot = slot_for(before)
    if slot is None:
        return None
    try:
        ctx = Context.from_environment()
        values = [v for v in candidates(ctx, slot[1], typed) if v.startswith(typed)]
    except Exception:  # a completion that fails offers nothing, never a traceback
        values = []
    if shell == "fish" and environ.get("_TYPER_COMPLETE_FISH_ACTION") == "is-args":
        return 0 if values else 1
    text = formatted(shell, values)
    if text:
        sys.stdout.write(text + "\n")
    return 0
