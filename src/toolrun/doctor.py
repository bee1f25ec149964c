"""``toolrun doctor``'s checks: each looks at one thing (the data folder, config.toml, the
history, the registries, containment, the daemon's and cluster's settings) and says ok, a
warning or a problem, with what to do about anything not ok.

Nothing here changes the data folder: the history is opened read-only, the config is read
without its cached copy, and registries are only asked for their index.
"""

from __future__ import annotations

import os
import re
import sqlite3
from pathlib import Path

from .config import Config, load_config
from .errors import ConfigError, ToolrunError
from .paths import Paths
from .records import record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

    from .tools.registry import Registry

OK, WARNING, PROBLEM = "ok", "warning", "problem"
LOW_SPACE = 512 * 1024**2  # free bytes under which the data folder is a warning
REPAIR = "run `toolrun history repair`: it rebuilds the index from the run folders"


@record(frozen=True)
class Check:
    """One finding: what was looked at, how it stands, and what to do when it is not ok."""

    name: str
    status: str  # ok | warning | problem
    detail: str
    fix: str = ""


def worst(checks: list[Check]) -> str:
    statuses = {check.status for check in checks}
    return PROBLEM if PROBLEM in statuses else WARNING if WARNING in statuses else OK


# -- the data folder and the history ------------------------------------------------------------


def check_data_dir(paths: Paths) -> Check:
    import shutil

    folder = paths.data_dir
    if not folder.exists():
        parent = next((p for p in folder.parents if p.exists()), None)
        if parent is not None and os.access(parent, os.W_OK | os.X_OK):
            return Check("data folder", OK, f"{folder} (made on first use)")
        return Check(
            "data folder",
            PROBLEM,
            f"{folder} does not exist and cannot be made",
            "make it writable, or point TOOLRUN_HOME at a folder you may write",
        )
    if not folder.is_dir():
        return Check("data folder", PROBLEM, f"{folder} is not a folder", "move the file aside")
    if not os.access(folder, os.W_OK | os.X_OK):
        return Check(
            "data folder",
            PROBLEM,
            f"{folder} cannot be written",
            "give yourself write permission, or point TOOLRUN_HOME elsewhere",
        )
    free = shutil.disk_usage(folder).free
    from .units import format_size

    if free < LOW_SPACE:
        return Check(
            "data folder",
            WARNING,
            f"{folder}: only {format_size(free)} free",
            "free some space, or prune old runs: `toolrun history prune --older-than 30d`",
        )
    return Check("data folder", OK, f"{folder} ({format_size(free)} free)")


def check_history(paths: Paths) -> Check:
    """``PRAGMA quick_check`` on history.db, opened read-only so a broken file stays as it is."""
    path = paths.data_dir / "history.db"
    if not path.exists():
        if _has_run_folders(paths.runs_dir):
            return Check("history", PROBLEM, f"{path} is missing beside run folders", REPAIR)
        return Check("history", OK, f"{path}: no runs yet")
    from urllib.parse import quote

    try:
        db = sqlite3.connect(f"file:{quote(str(path.absolute()))}?mode=ro", uri=True, timeout=5)
        try:
            found = [row[0] for row in db.execute("PRAGMA quick_check").fetchall()]
            runs = int(db.execute("SELECT COUNT(*) FROM runs").fetchone()[0])
        finally:
            db.close()
    except sqlite3.Error as exc:
        from .history.database import is_damage

        if is_damage(exc):
            return Check("history", PROBLEM, f"{path} is damaged: {exc}", REPAIR)
        return Check(
            "history",
            PROBLEM,
            f"{path} cannot be read: {exc}",
            "check the file's and its folder's permissions; is another program holding it?",
        )
    if found != ["ok"]:
        shown = "; ".join(found[:3]) + ("; ..." if len(found) > 3 else "")
        return Check("history", PROBLEM, f"{path} is damaged: {shown}", REPAIR)
    runs_dir = paths.runs_dir
    if runs == 0 and _has_run_folders(runs_dir):
        return Check("history", PROBLEM, f"{path} lists no runs, but {runs_dir} holds some", REPAIR)
    return Check("history", OK, f"{path}: intact, {runs} run(s)")


def _has_run_folders(runs_dir: Path) -> bool:
    from .history.model import RUN_ID_RE

    try:
        with os.scandir(runs_dir) as entries:
            return any(RUN_ID_RE.fullmatch(entry.name) for entry in entries)
    except OSError:
        return False


def check_tools(paths: Paths) -> Check:
    from .errors import StorageError
    from .tools.installer import Installer

    damaged: list[StorageError] = []
    installed = Installer(paths.tools_dir).installed(damaged)
    if damaged:
        return Check(
            "tools",
            PROBLEM,
            f"{len(damaged)} installed version(s) cannot be read: {damaged[0].message}",
            damaged[0].hint or "remove and reinstall it: `toolrun tool remove NAME==VERSION`",
        )
    return Check("tools", OK, f"{len(installed)} version(s) installed in {paths.tools_dir}")


# -- config.toml --------------------------------------------------------------------------------

_TOML_PLACE = re.compile(
    r"^(?P<path>.*): not valid TOML: (?P<what>.*) \(at line (?P<line>\d+), column (?P<col>\d+)\)$"
)


def check_config(paths: Paths) -> tuple[Check, Config | None]:
    """The config as the next command reads it (and None when it does not load)."""
    path = paths.config_file
    try:
        config = load_config(path)
    except ConfigError as exc:
        return Check("config", PROBLEM, _placed(exc.message), exc.hint or f"edit {path}"), None
    if not path.exists():
        return Check("config", OK, f"{path}: none, the defaults apply"), config
    return Check("config", OK, f"{path}: reads"), config


def _placed(message: str) -> str:
    """tomllib's "... (at line 3, column 7)" as an editor's ``file:3:7: ...``."""
    match = _TOML_PLACE.match(message)
    if match is None:
        return message
    return f"{match['path']}:{match['line']}:{match['col']}: not valid TOML: {match['what']}"


def check_toolchains(folders: list[Path]) -> Check:
    from .toolchains.model import load_toolchain, toolchain_files

    files = toolchain_files(folders)
    broken: list[str] = []
    for path in files:
        try:
            load_toolchain(path)
        except ToolrunError as exc:
            broken.append(exc.message.splitlines()[0])
    if broken:
        more = f" (and {len(broken) - 1} more)" if len(broken) > 1 else ""
        return Check(
            "toolchains",
            PROBLEM,
            f"{len(broken)} of {len(files)} do not load: {broken[0]}{more}",
            "fix the file named; `toolrun toolchain validate NAME` shows every mistake",
        )
    return Check("toolchains", OK, f"{len(files)} found")


# -- registries ---------------------------------------------------------------------------------


def check_registries(registries: list[Registry], *, offline: bool) -> list[Check]:
    """Each registry asked for what it holds, the HTTP ones at once (each within its timeout)."""
    if not registries:
        return [
            Check(
                "registries",
                WARNING,
                "none configured, and no ./registry here: no tool can be installed",
                "`toolrun registry add NAME FOLDER_OR_URL`, or `toolrun init` for a start",
            )
        ]
    asked: dict[int, Callable[[], Check]] = {}
    for index, registry in enumerate(registries):
        if offline and not registry.is_local:
            continue
        asked[index] = _asker(registry)
    results: dict[int, Check] = {}
    remote = [i for i in asked if not registries[i].is_local]
    if len(remote) > 1:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=min(8, len(remote))) as pool:
            futures = {i: pool.submit(asked[i]) for i in remote}
            results.update({i: future.result() for i, future in futures.items()})
    for index, ask in asked.items():
        if index not in results:
            results[index] = ask()
    checks = []
    for index, registry in enumerate(registries):
        name = f"registry {registry.name}"
        if index in results:
            checks.append(results[index])
        else:
            checks.append(Check(name, OK, f"{registry.location}: not asked (--offline)"))
    return checks


def _asker(registry: Registry) -> Callable[[], Check]:
    def ask() -> Check:
        name = f"registry {registry.name}"
        try:
            registry.refresh()  # the registry's own answer, not a copy kept from earlier
            count = len(registry.tool_names())
        except ToolrunError as exc:
            return Check(name, PROBLEM, exc.message, _registry_fix(registry))  # names the URL
        return Check(name, OK, f"{registry.location}: {count} tool(s)")

    return ask


def _registry_fix(registry: Registry) -> str:
    if registry.is_local:
        return f"mount or create the folder, or `toolrun registry remove {registry.name}`"
    return (
        "check the URL and the network (`toolrun registry list`), raise registry_timeout, "
        "or work from what is installed with --offline"
    )


# -- containment, daemon, cluster ---------------------------------------------------------------


def check_containment() -> Check:
    import sys

    from .executors.containment import GROUP, describe_containment, kind_in_force

    wanted = os.environ.get("TOOLRUN_CONTAINMENT", "").strip().lower()
    kind = kind_in_force()
    detail = describe_containment().removeprefix("containment: ")
    if wanted not in ("", "auto", "group"):
        return Check(
            "containment",
            WARNING,
            f"{detail}; TOOLRUN_CONTAINMENT={wanted!r} is not a known value",
            "set TOOLRUN_CONTAINMENT to auto or group, or unset it",
        )
    if kind == GROUP and sys.platform.startswith("linux") and wanted != "group":
        return Check(
            "containment",
            WARNING,
            detail,
            "for cgroups, run toolrun where it may make them: a systemd unit with "
            "Delegate=yes (or `systemd-run --user --scope -p Delegate=yes toolrun ...`), or as "
            "root; TOOLRUN_CONTAINMENT=group says you chose this",
        )
    return Check("containment", OK, detail)


def check_daemon(config: Config, toolchain_dirs: list[Path]) -> list[Check]:
    """What ``toolrun daemon`` would read of config.toml: tokens, hosts, hooks, notifications
    and schedules."""
    tokens = config.tokens
    hosts = tuple(config.get("allow_hosts"))
    parts = [f"{len(tokens)} token(s)"]
    if hosts:
        parts.append(f"allow_hosts {', '.join(hosts)}")
    if config.get("accept_env"):
        parts.append(f"accept_env {', '.join(config.get('accept_env'))}")
    if config.get("public_url"):
        parts.append(f"public_url {config.get('public_url')}")
    checks = []
    if hosts and not tokens:
        checks.append(
            Check(
                "daemon",
                WARNING,
                "; ".join(parts) + ": names beyond loopback, but without a token the daemon "
                "refuses to listen anywhere but loopback",
                "`toolrun daemon token create NAME`",
            )
        )
    else:
        checks.append(Check("daemon", OK, "; ".join(parts)))
    checks.append(_check_automation(config, toolchain_dirs))
    return checks


def _check_automation(config: Config, toolchain_dirs: list[Path]) -> Check:
    from .automation.catalog import ScheduleCatalog
    from .automation.channels import notifications_from_config
    from .automation.hooks import hooks_from_config

    try:
        hooks = hooks_from_config(config)
        notifications = notifications_from_config(config)
    except ToolrunError as exc:
        return Check("automation", PROBLEM, exc.message, exc.hint or f"edit {config.path}")
    catalog = ScheduleCatalog().collect(toolchain_dirs, config)
    detail = (
        f"{len(catalog.schedules)} schedule(s), {len(hooks)} hook(s), "
        f"{len(notifications.channels)} channel(s)"
    )
    if catalog.problems:
        more = f" (and {len(catalog.problems) - 1} more)" if len(catalog.problems) > 1 else ""
        return Check(
            "automation",
            PROBLEM,
            f"{detail}; {catalog.problems[0]}{more}",
            "fix the schedule named; `toolrun schedule list` shows every one",
        )
    return Check("automation", OK, detail)


def check_cluster(config: Config) -> Check:
    from importlib.metadata import PackageNotFoundError, version

    from .units import format_size

    try:
        dask = version("distributed")
    except PackageNotFoundError:
        return Check(
            "cluster",
            PROBLEM,
            "the distributed package is missing: `daemon --cluster` and `worker` cannot start",
            "reinstall toolrun (`pip install --force-reinstall toolrun`)",
        )
    cap = format_size(int(config.get("cluster_workspace_cap")))
    return Check("cluster", OK, f"distributed {dask}; cluster_workspace_cap {cap}")


def run_checks(
    paths: Paths,
    *,
    toolchain_dirs: list[Path],
    registries: Callable[[Config], list[Registry]],
    offline: bool,
) -> list[Check]:
    """Every check, in the order a person reads them. ``registries`` opens the configured
    registries (the composition root knows how)."""
    checks = [check_data_dir(paths)]
    config_check, config = check_config(paths)
    checks.append(config_check)
    # A data folder that is not one (a file, say) leaves nothing inside it to look at.
    for name, check in (("history", check_history), ("tools", check_tools)):
        try:
            checks.append(check(paths))
        except OSError as exc:
            reason = exc.strerror or str(exc)
            checks.append(Check(name, PROBLEM, f"cannot be read: {reason}", "fix the data folder"))
    checks.append(check_toolchains(toolchain_dirs))
    if config is None:
        skipped = "not checked: config.toml does not load"
        checks += [Check(name, WARNING, skipped, f"fix {paths.config_file} first")
                   for name in ("registries", "daemon", "cluster")]  # fmt: skip
        checks.append(check_containment())
        return checks
    checks += check_registries(registries(config), offline=offline or bool(config.get("offline")))
    checks.append(check_containment())
    checks += check_daemon(config, toolchain_dirs)
    checks.append(check_cluster(config))
    return checks
