"""The rules of publishing and upgrading toolrun itself, in this process: which wheels are
toolrun's, what a folder registry keeps of them, who may install over which installation.
(tests/self_upgrade_test.py does it all for real, in a scratch environment.)"""

from __future__ import annotations

import json
import sys
import zipfile
from pathlib import Path

import pytest

from toolrun.errors import ConfigError, IntegrityError, UsageError
from toolrun.tools.self_upgrade import (
    Installation,
    pip_command,
    publish_self,
    read_wheel,
    refusal,
    semver_of,
    this_installation,
    wheel_in,
)


def wheel(folder: Path, version: str = "1.2.3", *, name: str = "toolrun", meta: str = "") -> Path:
    path = folder / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as archive:
        text = meta or f"Metadata-Version: 2.3\nName: {name}\nVersion: {version}\n"
        archive.writestr(f"{name}-{version}.dist-info/METADATA", text)
        archive.writestr("toolrun/__init__.py", f'__version__ = "{version}"\n')
    return path


def test_pip_versions_and_wheels_are_read_as_published(tmp_path: Path) -> None:
    assert semver_of("1.2.3rc4") == "1.2.3-rc.4" and semver_of("1.2.3") == "1.2.3"
    assert semver_of("1.2") is None
    found = read_wheel(wheel(tmp_path))
    assert (found.version, found.semver) == ("1.2.3", "1.2.3")


@pytest.mark.parametrize(
    ("make", "says"),
    [
        (lambda d: wheel(d, name="other"), "not of toolrun"),
        (lambda d: d / "toolrun-1.2.3-cp311-cp311-linux_x86_64.whl", "pure Python"),
        (lambda d: wheel(d, "1.2"), "cannot be published as a tool version"),
        (lambda d: d / "toolrun-1.2.3-py3-none-any.whl", "no such file"),
        (lambda d: wheel(d, meta="Name: toolrun\nVersion: 9.9.9\n"), "its METADATA says"),
        (lambda d: d / "notes.txt", "wheel"),
    ],
)
def test_what_is_not_a_toolrun_release_is_refused(tmp_path: Path, make, says: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(UsageError) as refused:
        read_wheel(make(tmp_path))
    assert says in refused.value.message


def test_a_damaged_wheel_is_named(tmp_path: Path) -> None:
    path = tmp_path / "toolrun-1.2.3-py3-none-any.whl"
    path.write_bytes(b"PK\x03\x04 not really")
    with pytest.raises(UsageError) as refused:
        read_wheel(path)
    assert "not a readable wheel" in refused.value.message


def test_a_folder_registry_keeps_one_wheel_a_version_and_never_replaces_it(
    tmp_path: Path,
) -> None:
    registry = tmp_path / "registry"
    first = wheel(tmp_path)
    target, written = publish_self(first, registry)
    assert written and target == registry / "toolrun" / "1.2.3"
    manifest = (target / "tool.toml").read_text(encoding="utf-8")
    assert 'name = "toolrun"' in manifest and first.name in manifest
    assert wheel_in(target) == target / first.name
    assert publish_self(first, registry) == (target, False)  # the very same wheel: nothing to do
    other = tmp_path / "other"
    other.mkdir()
    with pytest.raises(IntegrityError):
        publish_self(wheel(other, meta="Name: toolrun\nVersion: 1.2.3\nSummary: rebuilt\n"),
                     registry)  # fmt: skip
    assert not [p for p in (registry / "toolrun").iterdir() if p.name.startswith(".")]
    a_file = tmp_path / "file"
    a_file.write_text("", encoding="utf-8")
    with pytest.raises(UsageError):
        publish_self(first, a_file)
    with pytest.raises(ConfigError):
        wheel_in(tmp_path / "registry")


@pytest.mark.parametrize(
    ("manager", "says", "hint"),
    [
        ("pipx", "installed with pipx", "pipx install --force"),
        ("uv-tool", "installed with `uv tool`", "uv tool install --force"),
        ("editable", "runs from a checkout", "git pull"),
        ("source", "runs from the source tree", "-m pip install"),
        ("no-pip", "has no pip", "uv pip install"),
    ],
)
def test_whoever_manages_the_installation_is_named_with_the_command_to_use(
    tmp_path: Path, manager: str, says: str, hint: str
) -> None:
    problem = refusal(Installation(manager, tmp_path, detail="/src/toolrun"), Path("t.whl"))
    assert problem is not None
    assert says in problem.message and problem.hint is not None and hint in problem.hint


def test_pip_installs_into_this_environment_as_it_was_installed(tmp_path: Path) -> None:
    assert refusal(Installation("pip", tmp_path), Path("t.whl")) is None
    plain = pip_command(Installation("pip", tmp_path), Path("t.whl"), no_deps=False)
    assert plain[:4] == [sys.executable, "-m", "pip", "install"] and plain[-1] == "t.whl"
    user = pip_command(Installation("pip", tmp_path, user_site=True), Path("t.whl"), no_deps=True)
    assert "--user" in user and "--no-deps" in user


@pytest.mark.parametrize(("receipt", "manager"), [("pipx_metadata.json", "pipx"),
                                                  ("uv-receipt.toml", "uv-tool")])  # fmt: skip
def test_pipx_and_uv_environments_are_known_by_their_receipts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, receipt: str, manager: str
) -> None:
    (tmp_path / receipt).write_text("{}", encoding="utf-8")
    monkeypatch.setattr(sys, "prefix", str(tmp_path))
    assert this_installation().manager == manager


def test_this_checkout_is_an_editable_install() -> None:
    found = this_installation()
    assert found.manager == "editable"
    assert Path(found.detail, "pyproject.toml").is_file()


def test_a_newer_toolrun_in_the_registry_is_shown_by_outdated_and_self_upgrade_check(
    workdir: Path, tmp_path: Path
) -> None:
    from conftest import run_toolrun

    from toolrun import __version__

    published = run_toolrun(
        "registry", "publish-self", "registry", "--wheel", str(wheel(tmp_path, "9.0.0")),
        cwd=workdir,
    )  # fmt: skip
    assert published.returncode == 0, published.stderr
    check = run_toolrun("self", "upgrade", "--check", cwd=workdir)
    assert check.returncode == 0, check.stderr
    assert f"toolrun 9.0.0 is available from ./registry (this is {__version__})" in check.stdout
    table = run_toolrun("tool", "outdated", cwd=workdir)
    assert "toolrun (self)" in table.stdout and "toolrun self upgrade" in table.stdout
    rows = json.loads(run_toolrun("tool", "outdated", "--json", cwd=workdir).stdout)
    assert [(r["name"], r["wanted"], r["self"]) for r in rows] == [("toolrun", "9.0.0", True)]
    # This checkout is an editable install: upgrading it is git's job, and toolrun says so.
    refused = run_toolrun("self", "upgrade", cwd=workdir)
    assert refused.returncode == 2 and "git pull" in refused.stderr
