"""toolrun itself as a tool: its wheel published in a folder registry as the tool
``toolrun``, and what an upgrade needs to know about how this toolrun was installed.

The wheel travels like any tool (the manifest pins its sha256, an HTTP tree the archive's);
only the last step differs: pip installs it into the environment toolrun runs from. pip's
versions (PEP 440) and tools' (SemVer) meet in plain releases and a/b/rc prereleases, which
order alike once written ``1.2.0-alpha.1``, ``-beta.1``, ``-rc.1``.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
import zipfile
from pathlib import Path

from ..errors import ConfigError, IntegrityError, UsageError
from ..records import record
from .archives import sha256_file
from .manifest import MANIFEST_NAME
from .versions import is_version

SELF_NAME = "toolrun"
_WHEEL_RE = re.compile(
    r"^(?P<name>[A-Za-z0-9_.]+)-(?P<version>[^-]+)(?:-\d[^-]*)?-(?P<python>[^-]+)"
    r"-(?P<abi>[^-]+)-(?P<platform>[^-]+)\.whl$"
)
_PEP440_RE = re.compile(r"^(?P<release>\d+\.\d+\.\d+)(?:(?P<kind>a|b|rc)(?P<number>\d+))?$")
_PRE_NAMES = {"a": "alpha", "b": "beta", "rc": "rc"}


def semver_of(pep440: str) -> str | None:
    """``0.2.0`` -> ``0.2.0``, ``0.2.0rc1`` -> ``0.2.0-rc.1``; None for what SemVer cannot
    order alike (dev, post and local versions, two-part releases)."""
    match = _PEP440_RE.match(pep440.strip().lower())
    if match is None:
        return None
    release = match["release"]
    if match["kind"] is None:
        return release
    return f"{release}-{_PRE_NAMES[match['kind']]}.{match['number']}"


@record(frozen=True)
class Wheel:
    path: Path
    version: str  # as pip writes it (PEP 440)
    semver: str  # as the registry names it


def read_wheel(path: Path) -> Wheel:
    """Check that ``path`` is a pure-Python wheel of toolrun whose metadata agrees with its
    file name; UsageError saying what is wrong otherwise."""
    match = _WHEEL_RE.match(path.name)
    if match is None:
        raise UsageError(f"{path.name}: not a wheel's file name (toolrun-X.Y.Z-py3-none-any.whl)")
    name = re.sub(r"[-_.]+", "-", match["name"]).lower()
    if name != SELF_NAME:
        raise UsageError(f"{path.name} is a wheel of {match['name']!r}, not of toolrun")
    if (match["abi"], match["platform"]) != ("none", "any"):
        raise UsageError(f"{path.name}: a toolrun wheel is pure Python (…-none-any.whl)")
    version = match["version"]
    semver = semver_of(version)
    if semver is None or not is_version(semver):
        raise UsageError(
            f"{path.name}: version {version!r} cannot be published as a tool version",
            hint="publish a release (X.Y.Z) or an a/b/rc prerelease (X.Y.ZrcN)",
        )
    try:
        with zipfile.ZipFile(path) as archive:
            metadata = archive.read(f"{match['name']}-{version}.dist-info/METADATA")
    except FileNotFoundError:
        raise UsageError(f"{path}: no such file") from None
    except (OSError, KeyError, zipfile.BadZipFile) as exc:
        raise UsageError(f"{path}: not a readable wheel ({exc})") from None
    fields = dict(
        line.split(": ", 1)
        for line in metadata.decode("utf-8", "replace").splitlines()
        if ": " in line and not line.startswith(" ")
    )
    if fields.get("Name", "").lower() != SELF_NAME or fields.get("Version") != version:
        raise UsageError(
            f"{path.name}: its METADATA says {fields.get('Name')} {fields.get('Version')}"
        )
    return Wheel(path, version, semver)


def publish_self(wheel_path: Path, registry: Path) -> tuple[Path, bool]:
    """Put the wheel in the folder registry as ``toolrun/<version>/``, with a manifest that
    pins its sha256. Returns the version folder and whether it was written (False: that
    very wheel was there already). A version is never replaced by another wheel."""
    wheel = read_wheel(wheel_path)
    if registry.exists() and not registry.is_dir():
        raise UsageError(f"{registry} is not a folder (a folder registry: <name>/<version>/...)")
    digest = sha256_file(wheel.path)
    target = registry / SELF_NAME / wheel.semver
    if target.exists():
        if _sha256_or_none(target / wheel.path.name) == digest:
            return target, False
        raise IntegrityError(
            f"{target} holds another toolrun {wheel.semver}; a published version is never replaced",
            hint="publish the new build under a new version",
        )
    staging = registry / SELF_NAME / f".publishing-{os.getpid()}-{wheel.semver}"
    try:
        staging.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(wheel.path, staging / wheel.path.name)
        if sha256_file(staging / wheel.path.name) != digest:
            raise IntegrityError(f"{wheel.path}: changed while it was being copied")
        (staging / MANIFEST_NAME).write_text(self_manifest(wheel, digest), encoding="utf-8")
        os.replace(staging, target)  # the registry shows the version whole or not at all
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target, True


def self_manifest(wheel: Wheel, digest: str) -> str:
    """The tool.toml of a published toolrun. Its command runs that toolrun from the wheel
    (a pure-Python wheel is importable as it is), on the dependencies of the toolrun that
    runs it: ``toolrun exec toolrun@X -- --version`` says which one was published."""
    name = wheel.path.name
    runner = (
        "import sys; sys.path.insert(0, sys.argv.pop(1)); "
        "from toolrun.__main__ import main; sys.exit(main())"
    )
    return (
        "# Written by `toolrun registry publish-self`; `toolrun self upgrade` installs it.\n"
        f'name = "{SELF_NAME}"\n'
        f'version = "{wheel.semver}"\n'
        f'description = "toolrun {wheel.version} itself (its wheel; toolrun self upgrade)"\n'
        f'command = ["{{python}}", "-c", "{runner}", "{{tool_dir}}/{name}"]\n'
        "\n[files]\n"
        f'"{name}" = "{digest}"\n'
    )


def wheel_in(folder: Path) -> Path:
    """The one wheel in an installed ``toolrun`` tool version's folder."""
    wheels = sorted(folder.glob("*.whl"))
    if len(wheels) != 1:
        raise ConfigError(f"{folder}: a published toolrun holds one wheel, found {len(wheels)}")
    return wheels[0]


# -- how this toolrun was installed -------------------------------------------------------------


@record(frozen=True)
class Installation:
    """Where this toolrun lives and who manages it."""

    manager: str  # pip | pipx | uv-tool | editable | source | no-pip
    prefix: Path  # the environment (sys.prefix)
    detail: str = ""  # the checkout of an editable install
    user_site: bool = False  # installed with pip --user


def this_installation() -> Installation:
    """How the running toolrun was installed, from the files pip, pipx and uv leave."""
    prefix = Path(sys.prefix)
    # pipx and `uv tool` keep a receipt at the top of the environment they made.
    if (prefix / "pipx_metadata.json").is_file():
        return Installation("pipx", prefix)
    if (prefix / "uv-receipt.toml").is_file():
        return Installation("uv-tool", prefix)
    import importlib.metadata
    import json

    try:
        distribution = importlib.metadata.distribution(SELF_NAME)
    except importlib.metadata.PackageNotFoundError:
        return Installation("source", prefix, str(Path(__file__).resolve().parents[2]))
    try:
        direct = json.loads(distribution.read_text("direct_url.json") or "{}")
    except ValueError:
        direct = {}
    if isinstance(direct, dict) and (direct.get("dir_info") or {}).get("editable"):
        from urllib.parse import urlsplit
        from urllib.request import url2pathname

        checkout = url2pathname(urlsplit(str(direct.get("url", ""))).path)
        return Installation("editable", prefix, checkout)
    import importlib.util

    if importlib.util.find_spec("pip") is None:
        return Installation("no-pip", prefix)
    import site

    location = Path(str(distribution.locate_file(""))).resolve()
    user_site = site.ENABLE_USER_SITE is True and _is_under(
        location, Path(site.getusersitepackages())
    )
    return Installation("pip", prefix, user_site=user_site)


def refusal(installation: Installation, wheel: Path) -> UsageError | None:
    """Why pip may not install ``wheel`` over this toolrun, with the command that may;
    None when it may."""
    manager = installation.manager
    if manager == "pipx":
        return UsageError(
            f"toolrun was installed with pipx ({installation.prefix}); pipx must upgrade it",
            hint=f"pipx install --force {wheel}",
        )
    if manager == "uv-tool":
        return UsageError(
            f"toolrun was installed with `uv tool` ({installation.prefix}); uv must upgrade it",
            hint=f"uv tool install --force {wheel}",
        )
    if manager == "editable":
        return UsageError(
            f"toolrun runs from a checkout ({installation.detail}, an editable install); "
            "pip would replace it with a copy",
            hint="update the checkout instead (git pull)",
        )
    if manager == "source":
        return UsageError(
            f"toolrun runs from the source tree {installation.detail}, not from an install",
            hint=f"{sys.executable} -m pip install {wheel}",
        )
    if manager == "no-pip":
        return UsageError(
            f"the environment toolrun runs in ({installation.prefix}) has no pip",
            hint=f"uv pip install --python {sys.executable} {wheel}",
        )
    return None


def pip_command(installation: Installation, wheel: Path, *, no_deps: bool) -> list[str]:
    """pip, in the very environment this toolrun runs from, installing ``wheel``."""
    command = [sys.executable, "-m", "pip", "install", "--disable-pip-version-check"]
    if installation.user_site:
        command.append("--user")
    if no_deps:
        command.append("--no-deps")
    return [*command, str(wheel)]


def _is_under(path: Path, folder: Path) -> bool:
    try:
        return path.is_relative_to(folder.resolve())
    except OSError:
        return False


def _sha256_or_none(path: Path) -> str | None:
    try:
        return sha256_file(path)
    except OSError:
        return None
