"""``toolrun registry ...``: configure registries, publish a folder as a static HTTP tree."""

from __future__ import annotations

from pathlib import Path

from ..config import ConfigEditor, shown_url, url_problem
from ..errors import UsageError
from ..tools.manifest import MANIFEST_NAME
from ..tools.publish import build_registry, rehash
from ..tools.registry import FolderRegistry
from .context import Context
from .output import info, print_json, print_table


def add(ctx: Context, name: str, location: str) -> None:
    if location.startswith(("http://", "https://")):
        problem = url_problem(location)
        if problem:
            raise UsageError(f"registry URL {shown_url(location)!r} {problem}")
    else:
        folder = Path(location.removeprefix("file://")).expanduser()
        if not location.strip() or not folder.is_dir():
            raise UsageError(f"{location!r} is neither an http(s) URL nor an existing folder")
        location = str(folder.resolve())
    editor = ConfigEditor(ctx.paths.config_file)
    editor.add_registry(name, location)
    editor.save()
    info(f"added registry {name!r}: {location}")


def remove(ctx: Context, name: str) -> None:
    editor = ConfigEditor(ctx.paths.config_file)
    editor.remove_registry(name)
    editor.save()
    info(f"removed registry {name!r}")


def list_registries(ctx: Context, *, as_json: bool = False) -> None:
    registries = ctx.registries
    if as_json:
        print_json(
            [
                {"name": r.name, "location": r.location, "kind": _kind(r.location)}
                for r in registries
            ]
        )
        return
    if not registries:
        info("no registries configured; add one with `toolrun registry add NAME LOCATION`")
        return
    print_table(
        ["name", "kind", "location"], [[r.name, _kind(r.location), r.location] for r in registries]
    )


def _kind(location: str) -> str:
    return "http" if location.startswith(("http://", "https://")) else "folder"


def build(source: Path, output: Path) -> None:
    from .progress import progress_bars

    with progress_bars() as watch:
        built = build_registry(source, output, watch)
    for item in built:
        info(f"{item.name} {item.version}: {item.entry.archive} ({item.entry.size} bytes)")
    info(f"wrote {output / 'index.json'}: {len(built)} tool versions")


def rehash_command(source: Path) -> None:
    """Rehash one version folder, or every version of a registry folder."""
    if (source / MANIFEST_NAME).is_file():
        folders = [source]
    else:
        registry = FolderRegistry("source", source)
        folders = [
            registry.version_dir(name, version)
            for name in registry.tool_names()
            for version in registry.versions(name)
        ]
    if not folders:
        raise UsageError(f"{source}: no tool.toml found (expected <name>/<version>/tool.toml)")
    for folder in folders:
        changed = rehash(folder)
        info(f"{folder}: {'updated' if changed else 'unchanged'}")
