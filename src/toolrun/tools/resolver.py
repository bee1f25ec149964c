"""From a spec to an installed tool: the one function the engine calls before running a step."""

from __future__ import annotations

from ..errors import NotFoundError, RegistryUnavailable
from ..records import field, record
from .installer import InstalledTool, Installer, InstallResult
from .versions import ToolSpec, sorted_versions

TYPE_CHECKING = False
if TYPE_CHECKING:
    from .registry import Registry


@record
class Available:
    """What the registries offer: tool -> version -> the first registry that has it."""

    versions: dict[str, dict[str, Registry]] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


class WouldInstall(Exception):
    """Resolving picked a version that is not installed, and the caller asked not to install
    (it may prefer to install elsewhere, as the daemon does in a worker thread)."""


class ToolResolver:
    """Resolves specs against installed tools and, unless offline, the registries."""

    def __init__(
        self, installer: Installer, registries: list[Registry], *, offline: bool = False
    ) -> None:
        self.installer = installer
        self.registries = registries
        self.offline = offline
        self.warnings: list[str] = []
        self.newly_installed: list[InstalledTool] = []

    def available(self, names: list[str] | None = None) -> Available:
        """Ask every registry (offline: only folders); one that cannot answer becomes a
        warning."""
        result = Available()
        for registry in self.registries:
            if self.offline and not registry.is_local:
                continue
            try:
                tool_names = names if names is not None else registry.tool_names()
                for name in tool_names:
                    for version in registry.versions(name):
                        result.versions.setdefault(name, {}).setdefault(version, registry)
            except RegistryUnavailable as exc:
                result.warnings.append(str(exc))
        self.warnings.extend(w for w in result.warnings if w not in self.warnings)
        return result

    def refresh(self) -> bool:
        """Have the next look ask each HTTP registry rather than reuse its index; True when
        there is such a registry to ask."""
        return any([registry.refresh() for registry in self.registries if not self.offline])

    @property
    def answers_locally(self) -> bool:
        """Resolving reads only this machine's disk: offline, or every registry a folder."""
        return self.offline or all(registry.is_local for registry in self.registries)

    def resolve(
        self, spec: ToolSpec, *, install: bool = True, pre: bool = False, may_install: bool = True
    ) -> InstalledTool:
        """The installed tool to use for ``spec``, installing the best match first if allowed.

        Without ``install`` only installed versions count, and no registry is contacted.
        Without ``may_install`` the registries count, but a best match that is not installed
        raises ``WouldInstall``.
        """
        return self.resolve_with_result(
            spec, install=install, pre=pre, may_install=may_install
        ).tool

    def resolve_with_result(
        self, spec: ToolSpec, *, install: bool = True, pre: bool = False, may_install: bool = True
    ) -> InstallResult:
        installed = self.installer.versions(spec.name)
        offered: dict[str, Registry] = {}
        if install and not (spec.is_exact and spec.pick(installed, pre=pre)):
            offered = self.available([spec.name]).versions.get(spec.name, {})
        best = spec.pick([*installed, *offered], pre=pre)
        if best is None and install and self.refresh():
            # The indexes may be reused copies that predate the version asked for.
            offered = self.available([spec.name]).versions.get(spec.name, {})
            best = spec.pick([*installed, *offered], pre=pre)
        if best is None:
            raise self._no_match(spec, installed, offered, install=install)
        if best in installed:
            tool = self.installer.get(spec.name, best)
            assert tool is not None
            return InstallResult(tool, already_installed=True)
        if not may_install:
            raise WouldInstall(f"{spec.name} {best}")
        result = self.installer.install(offered[best], spec.name, best)
        if not result.already_installed:
            self.newly_installed.append(result.tool)
        return result

    def _no_match(
        self, spec: ToolSpec, installed: list[str], offered: dict[str, Registry], *, install: bool
    ) -> NotFoundError | RegistryUnavailable:
        known = sorted_versions({*installed, *offered})
        unreachable = f"; {'; '.join(self.warnings)}" if self.warnings else ""
        if known:
            some_prerelease = any("-" in version.split("+")[0] for version in known)
            return NotFoundError(
                f"no version of {spec.name} matches {spec.constraint or 'latest'!r} "
                f"(known: {', '.join(known)}){unreachable}",
                hint="prereleases match only with --pre or when the spec names one"
                if some_prerelease and not spec.names_prerelease
                else None,
            )
        if not install:
            return NotFoundError(
                f"{spec.name} is not installed",
                hint=f"install it with: toolrun tool install {spec}",
            )
        everything = set(self.installer.names())
        everything.update(self.available().versions)
        import difflib

        close = difflib.get_close_matches(spec.name, sorted(everything), n=3)
        suggestion = f" (did you mean {', '.join(close)}?)" if close else ""
        if self.warnings:
            # A registry that could not be asked may have it: that, not the name, is the
            # problem to fix (exit 3, as --help says).
            return RegistryUnavailable(
                f"{spec.name!r} is not installed and a registry could not be asked"
                f"{unreachable}{suggestion}"
            )
        return NotFoundError(f"unknown tool {spec.name!r}{suggestion}{unreachable}")
