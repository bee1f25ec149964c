"""``toolrun self upgrade`` (``toolrun -u``) and ``toolrun registry publish-self``: toolrun
upgrades itself from the team's registry, where its wheel is published as the tool
``toolrun`` (the domain is tools/self_upgrade.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from .. import __version__
from ..errors import ConfigError, NotFoundError, ToolrunError, UsageError
from ..tools.self_upgrade import (
    SELF_NAME,
    pip_command,
    publish_self,
    read_wheel,
    refusal,
    semver_of,
    this_installation,
    wheel_in,
)
from ..tools.versions import parse_spec, version_key
from .context import Context
from .output import info, warn


def upgrade(ctx: Context, *, check: bool = False, pre: bool = False, no_deps: bool = False) -> None:
    """Install the newest toolrun the registries offer into this toolrun's environment."""
    current = semver_of(__version__)
    current_key = version_key(current) if current else None
    if current_key is None:
        raise ToolrunError(
            f"this toolrun's version {__version__!r} cannot be compared with published ones"
        )
    ctx.resolver.refresh()  # a question about what the registries offer now
    offered = ctx.resolver.available([SELF_NAME]).versions.get(SELF_NAME, {})
    problems = list(ctx.resolver.warnings)
    ctx.resolver.warnings.clear()
    best = parse_spec(SELF_NAME).pick(offered, pre=pre)
    if best is None:
        unreachable = f"; {'; '.join(problems)}" if problems else ""
        raise NotFoundError(
            f"no registry offers toolrun{unreachable}",
            hint="publish its wheel in the team's registry: toolrun registry publish-self "
            "FOLDER (docs/registry.md)",
        )
    for unreachable_registry in problems:
        warn(f"{unreachable_registry}; looked in the other registries")
    registry = offered[best]
    best_key = version_key(best)
    assert best_key is not None
    if best_key <= current_key:
        info(f"toolrun {__version__} is up to date (the newest in the registries: {best})")
        return
    if check:
        info(
            f"toolrun {best} is available from {registry.name} (this is {__version__}); "
            "upgrade with: toolrun self upgrade"
        )
        return
    installation = this_installation()
    if installation.manager == "editable":  # nothing to fetch for a checkout
        problem = refusal(installation, Path())
        assert problem is not None
        raise problem
    # Fetched and checked as any tool is: the archive's sha256, then the wheel's.
    result = ctx.installer.install(registry, SELF_NAME, best)
    wheel = wheel_in(result.tool.path)
    try:
        published = read_wheel(wheel)  # a toolrun wheel, of the version it is published as
    except UsageError as error:
        raise ConfigError(f"registry {registry.name!r}: toolrun {best}: {error}") from None
    if published.semver != best:
        raise ConfigError(
            f"registry {registry.name!r}: toolrun {best} holds the wheel of "
            f"{published.version} ({wheel})"
        )
    problem = refusal(installation, wheel)
    if problem is not None:
        raise problem  # the checked wheel stays where the hint names it
    info(f"installing toolrun {best} from {registry.name} into {installation.prefix} with pip")
    sys.stdout.flush()
    finished = subprocess.run(pip_command(installation, wheel, no_deps=no_deps), check=False)
    if finished.returncode != 0:
        raise ToolrunError(
            f"pip could not install {wheel.name} (exit {finished.returncode}; its output is above)",
            hint=f"the checked wheel is {wheel}",
        )
    said = subprocess.run(
        [sys.executable, "-m", "toolrun", "--version"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    wanted = f"toolrun {published.version}"
    if said != wanted:
        raise ToolrunError(f"pip finished, but toolrun now says {said!r}, not {wanted!r}")
    ctx.installer.remove(SELF_NAME, best)  # pip has it now; it was never a tool to run
    info(f"toolrun {__version__} -> {published.version}")


def publish(folder: Path, wheel: Path | None) -> None:
    """Publish a toolrun wheel (by default one built from the checkout this toolrun runs
    from) in a folder registry."""
    if wheel is not None:
        _publish(wheel, folder)
        return
    import tempfile

    source = _checkout()
    with tempfile.TemporaryDirectory(prefix="toolrun-wheel-") as out:
        info(f"building toolrun's wheel from {source}")
        _build_wheel(source, Path(out))
        built = sorted(Path(out).glob(f"{SELF_NAME}-*.whl"))
        if len(built) != 1:
            raise ToolrunError(f"pip wheel left {len(built)} toolrun wheels in {out}")
        _publish(built[0], folder)


def _publish(wheel: Path, folder: Path) -> None:
    target, written = publish_self(wheel, folder)
    if written:
        info(f"published {wheel.name} as {SELF_NAME} {target.name}: {target}")
        info(f"for an HTTP registry, build the tree again: toolrun registry build {folder} OUT")
    else:
        info(f"{target} holds this wheel already")


def _checkout() -> Path:
    """The source tree this toolrun runs from (an editable install), to build a wheel of."""
    installation = this_installation()
    if installation.manager in ("editable", "source") and installation.detail:
        root = Path(installation.detail)
        for folder in (root, *root.parents):
            if (folder / "pyproject.toml").is_file():
                return folder
    raise UsageError(
        "this toolrun was not installed from a checkout, so it has no source to build",
        hint="name a wheel: toolrun registry publish-self FOLDER --wheel "
        "toolrun-X.Y.Z-py3-none-any.whl (in a checkout: python -m pip wheel --no-deps -w dist .)",
    )


def _build_wheel(source: Path, out: Path) -> None:
    """``pip wheel --no-deps``; without build isolation when the build backend is already
    importable here (no package index needed), with it otherwise, as ``pip install`` would."""
    import importlib.util
    import tomllib

    try:
        backend = tomllib.loads((source / "pyproject.toml").read_text(encoding="utf-8"))[
            "build-system"
        ]["build-backend"]
    except (OSError, KeyError, TypeError, tomllib.TOMLDecodeError):
        backend = ""
    command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--disable-pip-version-check"]
    top = str(backend).split(".")[0]
    if top and importlib.util.find_spec(top) is not None:
        command.append("--no-build-isolation")
    sys.stdout.flush()
    finished = subprocess.run([*command, "-q", "-w", str(out), str(source)], check=False)
    if finished.returncode != 0:
        raise ToolrunError(f"pip wheel could not build {source} (exit {finished.returncode})")
