"""``toolrun tool search``: the tools whose name or description holds a word, among those
installed and those the registries offer."""

from __future__ import annotations

from ..errors import ToolrunError
from ..records import record
from .registry import FolderRegistry, HttpRegistry
from .versions import sorted_versions

TYPE_CHECKING = False
if TYPE_CHECKING:
    from .installer import Installer
    from .registry import Registry
    from .resolver import ToolResolver


@record(frozen=True)
class Found:
    """A tool that matched: its newest version anywhere, and where its versions are."""

    name: str
    version: str
    description: str
    installed: tuple[str, ...]  # installed versions, oldest first
    registry: str | None  # the registry offering the newest version it offers


def matches(word: str, name: str, description: str) -> bool:
    """``word`` in the name or the description, ignoring case."""
    folded = word.casefold()
    return folded in name.casefold() or folded in description.casefold()


def description_in(registry: Registry, name: str, version: str) -> str:
    """What the registry says the version is: its index's text (HTTP), its manifest's (a
    folder); "" when it says nothing readable."""
    try:
        if isinstance(registry, HttpRegistry):
            return registry.entry(name, version).description
        if isinstance(registry, FolderRegistry):
            from .manifest import MANIFEST_NAME, load_manifest

            path = registry.version_dir(name, version) / MANIFEST_NAME
            return load_manifest(path).description
    except (ToolrunError, KeyError, OSError):
        pass  # a manifest that does not load is `tool install`'s to report
    return ""


def search_tools(word: str, installer: Installer, resolver: ToolResolver) -> list[Found]:
    """Every tool matching ``word``, by name; registries that cannot answer become the
    resolver's warnings."""
    installed: dict[str, dict[str, str]] = {}  # name -> version -> description
    for tool in installer.installed([]):
        installed.setdefault(tool.name, {})[tool.version] = tool.manifest.description
    offered = resolver.available().versions
    found = []
    for name in sorted({*installed, *offered}):
        mine = installed.get(name, {})
        theirs = offered.get(name, {})
        newest = sorted_versions({*mine, *theirs})[-1]
        newest_offered = sorted_versions(theirs)[-1] if theirs else None
        description = ""
        if newest_offered is not None:
            description = description_in(theirs[newest_offered], name, newest_offered)
        if not description and mine:
            description = mine[sorted_versions(mine)[-1]]
        if matches(word, name, description):
            registry = theirs[newest_offered].name if newest_offered is not None else None
            found.append(Found(name, newest, description, tuple(sorted_versions(mine)), registry))
    return found
