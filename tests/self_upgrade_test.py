"""toolrun upgrades itself: a wheel built from this checkout with a higher version, published
with `toolrun registry publish-self`, built into a static tree served on 127.0.0.1, and
installed by `toolrun self upgrade` into a scratch virtual environment.

The scratch environment is made without pip (50 ms rather than seconds) and sees the dev
environment's packages, toolrun's dependencies and pip among them, through a folder of links
that leaves toolrun itself out; toolrun is installed there from its own wheel, as a user's
would be. One is made per module and copied for each test.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import REPO, Serve, Toolrun, run_toolrun

from toolrun import __version__

MAJOR = int(__version__.split(".")[0])
NEWER = f"{MAJOR + 1}.0.0"


def _build_wheel(source: Path, out: Path) -> Path:
    pip = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q"]
    subprocess.run(
        [*pip, "--disable-pip-version-check", "-w", str(out), str(source)],
        check=True,
        timeout=120,
    )
    (wheel,) = out.glob("toolrun-*.whl")
    return wheel


@pytest.fixture(scope="module")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """This checkout's wheel, published by `registry publish-self` (which builds it), and a
    wheel of the same tree with a higher version."""
    base = tmp_path_factory.mktemp("wheels")
    current_registry = base / "current"
    current_registry.mkdir()
    built = run_toolrun(
        "registry", "publish-self", str(current_registry), env={"TOOLRUN_HOME": str(base / "h")}
    )
    assert built.returncode == 0, built.stderr
    (current,) = (current_registry / "toolrun" / __version__).glob("*.whl")
    tree = base / "newer-tree"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(REPO / "src", tree / "src", ignore=ignore)
    for name in ("pyproject.toml", "README.md", "docs/http-api.md"):
        (tree / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / name, tree / name)
    init = tree / "src" / "toolrun" / "__init__.py"
    init.write_text(
        re.sub(r'__version__ = ".*"', f'__version__ = "{NEWER}"', init.read_text()),
        encoding="utf-8",
    )
    newer = _build_wheel(tree, base / "newer")
    return {"current": current, "newer": newer}


def _site_packages(venv: Path) -> Path:
    relative = Path(sysconfig.get_path("purelib")).relative_to(sys.prefix)
    return venv / relative


@pytest.fixture(scope="module")
def template_venv(wheels: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("venv")
    venv = base / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    # The dev environment's packages, less toolrun (an editable install of this checkout)
    # and the .pth files that would bring it back.
    links = base / "deps"
    links.mkdir()
    for entry in Path(sysconfig.get_path("purelib")).iterdir():
        if entry.name.startswith(("toolrun", "_editable_impl_toolrun", "__editable__")):
            continue
        if entry.suffix == ".pth" or entry.name == "__pycache__":
            continue
        (links / entry.name).symlink_to(entry)
    (_site_packages(venv) / "dev-packages.pth").write_text(f"{links}\n", encoding="utf-8")
    python = venv / "bin" / "python"
    pip = [str(python), "-m", "pip", "install", "-q", "--no-deps", "--disable-pip-version-check"]
    subprocess.run(
        [*pip, str(wheels["current"])],
        check=True,
        timeout=120,
    )
    return venv


@pytest.fixture
def venv(template_venv: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "venv"
    shutil.copytree(template_venv, copy, symlinks=True)
    return copy


def scrubbed_env() -> dict[str, str]:
    """This environment without a PYTHONPATH, which would shadow what pip installs."""
    return {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}


def in_venv(venv: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """toolrun as the scratch environment's own `python -m toolrun` runs it."""
    return subprocess.run(
        [str(venv / "bin" / "python"), "-m", "toolrun", *args],
        cwd=cwd,
        env={**scrubbed_env(), "PIP_NO_INDEX": "1"},  # an upgrade must need no package index
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def team(wheels: dict[str, Path], tmp_path: Path, toolrun: Toolrun, serve: Serve) -> Iterator[Path]:
    """The team's registry: the newer wheel published in a folder, built into a static tree,
    served on 127.0.0.1 and configured as 'team'. Yields the tree."""
    source = tmp_path / "team-source"
    source.mkdir()
    published = toolrun("registry", "publish-self", str(source), "--wheel", str(wheels["newer"]))
    assert published.returncode == 0, published.stderr
    assert f"as toolrun {NEWER}" in published.stdout
    tree = tmp_path / "team-tree"
    assert toolrun("registry", "build", str(source), str(tree)).returncode == 0
    assert toolrun("registry", "add", "team", serve(tree)).returncode == 0
    yield tree


def test_self_upgrade_installs_the_published_wheel_into_its_own_environment(
    venv: Path, team: Path, workdir: Path, serve: Serve, toolrun_home: Path
) -> None:
    assert in_venv(venv, "--version", cwd=workdir).stdout == f"toolrun {__version__}\n"

    check = in_venv(venv, "self", "upgrade", "--check", cwd=workdir)
    assert check.returncode == 0, check.stderr
    assert f"toolrun {NEWER} is available from team (this is {__version__})" in check.stdout
    assert in_venv(venv, "--version", cwd=workdir).stdout == f"toolrun {__version__}\n"

    upgraded = in_venv(venv, "self", "upgrade", cwd=workdir)
    assert upgraded.returncode == 0, upgraded.stdout + upgraded.stderr
    assert f"toolrun {__version__} -> {NEWER}" in upgraded.stdout
    assert any(path.endswith(f"toolrun-{NEWER}.zip") for path, _, _ in serve.answered)
    # The new version answers, from `python -m` and from the console script pip wrote.
    assert in_venv(venv, "--version", cwd=workdir).stdout == f"toolrun {NEWER}\n"
    script = subprocess.run(
        [str(venv / "bin" / "toolrun"), "--version"], capture_output=True, env=scrubbed_env()
    )
    assert script.stdout.decode() == f"toolrun {NEWER}\n"
    # The checked wheel was only a carrier: it is no tool to run.
    assert not (toolrun_home / "tools" / "toolrun").exists()

    again = in_venv(venv, "-u", cwd=workdir)  # the seed's flag: the same command
    assert again.returncode == 0, again.stderr
    assert f"toolrun {NEWER} is up to date" in again.stdout


def test_a_wheel_whose_sha256_changed_is_refused_before_pip(
    venv: Path, team: Path, workdir: Path
) -> None:
    archive = team / "toolrun" / f"toolrun-{NEWER}.zip"
    data = bytearray(archive.read_bytes())
    data[len(data) // 2] ^= 0xFF
    archive.write_bytes(bytes(data))
    result = in_venv(venv, "-u", cwd=workdir)
    assert result.returncode == 5, result.stderr
    assert "archive sha256 mismatch" in result.stderr
    assert in_venv(venv, "--version", cwd=workdir).stdout == f"toolrun {__version__}\n"


@pytest.mark.parametrize(
    ("receipt", "command"),
    [
        ("pipx_metadata.json", "pipx install --force"),
        ("uv-receipt.toml", "uv tool install --force"),
    ],
)
def test_an_environment_pipx_or_uv_made_is_left_to_them(
    venv: Path, team: Path, workdir: Path, receipt: str, command: str
) -> None:
    (venv / receipt).write_text("{}\n", encoding="utf-8")
    result = in_venv(venv, "self", "upgrade", cwd=workdir)
    assert result.returncode == 2, result.stderr
    assert "must upgrade it" in result.stderr
    hint = next(line for line in result.stderr.splitlines() if "hint:" in line)
    wheel = Path(hint.split(command, 1)[1].strip())
    assert wheel.name == f"toolrun-{NEWER}-py3-none-any.whl" and wheel.is_file()
    assert in_venv(venv, "--version", cwd=workdir).stdout == f"toolrun {__version__}\n"


def test_a_checkout_is_never_replaced(team: Path, toolrun: Toolrun) -> None:
    # The dev environment runs toolrun from this checkout (pip install -e).
    result = toolrun("self", "upgrade")
    assert result.returncode == 2, result.stderr
    assert "an editable install" in result.stderr and "git pull" in result.stderr
    assert toolrun("self", "upgrade", "--check").returncode == 0


def test_nothing_published_is_not_found_and_an_equal_version_is_up_to_date(
    wheels: dict[str, Path], toolrun: Toolrun, workdir: Path
) -> None:
    (workdir / "registry").mkdir()
    result = toolrun("self", "upgrade", "--check")
    assert result.returncode == 4
    assert "no registry offers toolrun" in result.stderr and "publish-self" in result.stderr
    published = toolrun("registry", "publish-self", "registry", "--wheel", str(wheels["current"]))
    assert published.returncode == 0, published.stderr
    same = toolrun("self", "upgrade")
    assert same.returncode == 0, same.stderr
    assert f"toolrun {__version__} is up to date" in same.stdout


def _fake_wheel(path: Path, name: str, version: str) -> Path:
    """A zip named ``path`` whose METADATA says ``name`` and ``version``."""
    dist_info = "-".join(path.name.split("-")[:2]) + ".dist-info"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(f"{dist_info}/METADATA", f"Name: {name}\nVersion: {version}\n")
    return path


def test_publish_self_refuses_what_is_not_a_toolrun_release(
    wheels: dict[str, Path], toolrun: Toolrun, tmp_path: Path, workdir: Path
) -> None:
    folder = workdir / "registry"
    folder.mkdir()
    cases = {
        "other-1.0.0-py3-none-any.whl": ("other", "1.0.0", "not of toolrun"),
        "toolrun-1.0.0.dev1-py3-none-any.whl": ("toolrun", "1.0.0.dev1", "cannot be published"),
        "toolrun-1.0.0-cp311-cp311-linux_x86_64.whl": ("toolrun", "1.0.0", "pure Python"),
        "toolrun-1.0.0-py3-none-any.whl": ("toolrun", "1.0.1", "METADATA says"),
        "toolrun.tar.gz": ("toolrun", "1.0.0", "not a wheel"),
    }
    for filename, (name, version, said) in cases.items():
        wheel = _fake_wheel(tmp_path / filename, name, version)
        result = toolrun("registry", "publish-self", str(folder), "--wheel", str(wheel))
        assert result.returncode == 2, (filename, result.stderr)
        assert said in result.stderr, (filename, result.stderr)
    assert not (folder / "toolrun").exists()
    # A published version is never replaced by another build of it.
    assert (
        toolrun(
            "registry", "publish-self", "registry", "--wheel", str(wheels["current"])
        ).returncode
        == 0
    )
    impostor = tmp_path / "impostor" / wheels["current"].name
    impostor.parent.mkdir()
    shutil.copy(wheels["current"], impostor)
    with zipfile.ZipFile(impostor, "a") as archive:
        archive.writestr("extra.txt", "x")
    result = toolrun("registry", "publish-self", "registry", "--wheel", str(impostor))
    assert result.returncode == 5 and "never replaced" in result.stderr
    manifest = (folder / "toolrun" / __version__ / "tool.toml").read_text(encoding="utf-8")
    digest = json.dumps(__import__("hashlib").sha256(wheels["current"].read_bytes()).hexdigest())
    assert digest in manifest


def test_the_published_wheel_runs_as_a_tool(wheels: dict[str, Path], toolrun: Toolrun) -> None:
    published = toolrun("registry", "publish-self", "registry", "--wheel", str(wheels["newer"]))
    assert published.returncode == 0, published.stderr
    result = toolrun("exec", "toolrun", "--", "--version")
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"toolrun {NEWER}\n"


def test_pip_versions_become_semver_versions_that_order_alike() -> None:
    from toolrun.tools.self_upgrade import semver_of
    from toolrun.tools.versions import sorted_versions

    pip_order = ["1.2.0a1", "1.2.0a2", "1.2.0b1", "1.2.0rc1", "1.2.0", "1.10.0"]
    semver = [semver_of(version) for version in pip_order]
    prereleases = ["1.2.0-alpha.1", "1.2.0-alpha.2", "1.2.0-beta.1", "1.2.0-rc.1"]
    assert semver == [*prereleases, "1.2.0", "1.10.0"]
    assert sorted_versions(reversed([v for v in semver if v])) == semver
    for unordered in ("1.2", "1.2.0.dev1", "1.2.0.post1", "1.2.0+local", "x"):
        assert semver_of(unordered) is None
