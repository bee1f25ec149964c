"""Publishing tools: hashing a folder registry's files and building a static HTTP tree."""

from __future__ import annotations

import json
import os
from pathlib import Path

from .. import __version__
from ..errors import ConfigError, IntegrityError, UsageError
from ..records import record
from .archives import sha256_file, write_zip
from .installer import verify_folder
from .manifest import MANIFEST_NAME, is_generated, load_manifest
from .registry import INDEX_FORMAT, INDEX_NAME, ArchiveEntry, FolderRegistry, index_to_json
from .watching import QUIET, Watch


@record(frozen=True)
class BuiltArchive:
    name: str
    version: str
    path: Path
    entry: ArchiveEntry


def tool_files(folder: Path) -> list[str]:
    """Every file of a tool version folder but its manifest, as sorted posix paths."""
    files = []
    for path in sorted(folder.rglob("*")):
        if path.is_symlink():
            raise IntegrityError(f"{path}: tool folders may not hold symbolic links")
        relative = path.relative_to(folder).as_posix()
        if path.is_file() and relative != MANIFEST_NAME and not is_generated(relative):
            files.append(relative)
    return files


def rehash(folder: Path) -> bool:
    """Rewrite ``folder/tool.toml``'s ``[files]`` from the files present; True if it changed.

    Edits through tomlkit, so the author's comments and layout survive.
    """
    import tomlkit

    manifest_path = folder / MANIFEST_NAME
    manifest = load_manifest(manifest_path)  # refuse to touch a manifest wrong in other ways
    document = tomlkit.parse(manifest_path.read_text(encoding="utf-8"))
    hashes = {} if manifest.is_system else {f: sha256_file(folder / f) for f in tool_files(folder)}
    if dict(document.get("files", {})) == hashes:
        return False
    table = tomlkit.table()
    for relative, digest in hashes.items():
        table.add(relative, digest)
    document["files"] = table
    manifest_path.write_text(tomlkit.dumps(document), encoding="utf-8")
    return True


def build_registry(source: Path, output: Path, watch: Watch = QUIET) -> list[BuiltArchive]:
    """Write ``output/index.json`` and one zip per tool version found in ``source``."""
    if not source.is_dir():
        raise UsageError(f"{source} is not a folder")
    if not str(output).strip() or output == Path():
        raise UsageError("name the output folder (an empty OUT would write into this one)")
    if output.exists() and not output.is_dir():
        raise UsageError(f"{output} exists and is not a folder")
    index_path = output / INDEX_NAME
    if index_path.exists() and not _is_registry_index(index_path):
        raise UsageError(f"{index_path} exists and is not a registry index; choose another folder")
    if output.resolve() == source.resolve() or source.resolve() in output.resolve().parents:
        raise UsageError("the output folder must be outside the source registry")
    registry = FolderRegistry("source", source)
    built: list[BuiltArchive] = []
    output.mkdir(parents=True, exist_ok=True)
    found = [
        (name, version) for name in registry.tool_names() for version in registry.versions(name)
    ]
    watch.begin(f"building {output}", len(found), unit="versions")
    for name, version in found:
        folder = registry.version_dir(name, version)
        try:
            manifest = verify_folder(folder, expected_name=name, expected_version=version)
        except IntegrityError as exc:
            raise IntegrityError(
                f"{exc.message}; run `toolrun registry rehash {source}` after changing files"
            ) from None
        relative = f"{name}/{name}-{version}.zip"
        archive = output / relative
        archive.parent.mkdir(parents=True, exist_ok=True)
        temporary = archive.with_suffix(".zip.tmp")
        write_zip(folder, [MANIFEST_NAME, *manifest.files], temporary)
        os.replace(temporary, archive)
        entry = ArchiveEntry(
            archive=relative,
            sha256=sha256_file(archive),
            size=archive.stat().st_size,
            description=manifest.description,
            kind=manifest.kind,
            unpacked=sum(
                (folder / relative).stat().st_size for relative in [MANIFEST_NAME, *manifest.files]
            ),
        )
        built.append(BuiltArchive(name, version, archive, entry))
        watch.advance(1)
    watch.end()
    if not built:
        raise ConfigError(f"{source}: no tools found (expected <name>/<version>/tool.toml)")
    index: dict[str, dict[str, ArchiveEntry]] = {}
    for item in built:
        index.setdefault(item.name, {})[item.version] = item.entry
    temporary_index = output / f"{INDEX_NAME}.tmp"
    temporary_index.write_text(index_to_json(index, f"toolrun {__version__}"), encoding="utf-8")
    os.replace(temporary_index, output / INDEX_NAME)
    return built


def _is_registry_index(path: Path) -> bool:
    """A file ``registry build`` wrote, and may therefore write again."""
    try:
        data = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and data.get("format") == INDEX_FORMAT and "tools" in data
