"""``auto_update`` in config.toml: after a command that ran tools, at most once a day, a
check for newer tool versions in a process of its own, and a one-line notice of what the
last check found.

The check never slows the command: it starts only once the command's own work is done, and
runs detached (``python -m toolrun.cli.auto_update``), so a registry that is slow to answer
delays nobody. It asks each registry once (a conditional GET of an HTTP registry's index);
with ``install`` it installs the versions it found, beside the old ones, and never removes
any. What it found waits in ``<data dir>/update-check.json``, and the next command that runs
tools prints it, once. With ``off`` (the default) this costs a command one dictionary look.
"""

from __future__ import annotations

import sys
import time

from ..errors import ToolrunError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from .context import Context

CHECK_MODULE = "toolrun.cli.auto_update"


def after_command(ctx: Context) -> None:
    """Print the pending notice and start a check that is due; only after a command that
    ran tools here (exec, run, rerun)."""
    if "engine" not in ctx.__dict__ or ctx.remote:
        return
    try:
        mode = ctx.config.get("auto_update")
        if mode == "off":
            return
        _notice_and_check(ctx)
    except (ToolrunError, OSError):
        # The command's own outcome is what the user asked for; an update notice that
        # cannot be read or written must not change it. The next command tries again.
        return


def _notice_and_check(ctx: Context) -> None:
    from ..tools.updates import DAY, notice_text, read_stamp, stamp_path, write_stamp

    path = stamp_path(ctx.paths.data_dir)
    stamp = read_stamp(path)
    now = time.time()
    changed = False
    if stamp.notice_pending() and now - stamp.notified_at >= DAY:
        print(f"toolrun: notice: {notice_text(stamp)}", file=sys.stderr, flush=True)
        stamp.notified_at = now
        changed = True
    if stamp.is_due(now):
        stamp.started_at = now
        write_stamp(path, stamp)  # first, so that the commands that follow start no other
        _start_check(ctx)
    elif changed:
        write_stamp(path, stamp)


def _start_check(ctx: Context) -> None:
    import subprocess

    args = [sys.executable, "-m", CHECK_MODULE]
    if ctx.offline:
        args.append("--offline")
    if sys.platform == "win32":
        flags = subprocess.DETACHED_PROCESS | subprocess.CREATE_NEW_PROCESS_GROUP
        detached: dict[str, object] = {"creationflags": flags | subprocess.CREATE_NO_WINDOW}
    else:
        detached = {"start_new_session": True}  # Ctrl-C at the terminal is not meant for it
    subprocess.Popen(
        args,
        cwd=ctx.cwd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        close_fds=True,
        **detached,  # type: ignore[call-overload]
    )


def run_check(ctx: Context) -> None:
    """The check itself: ask the registries, install when told to, write the stamp."""
    import filelock

    from ..tools.updates import DAY, read_stamp, stamp_path, write_stamp
    from .update_commands import survey_here

    path = stamp_path(ctx.paths.data_dir)
    lock = filelock.FileLock(f"{path}.lock", timeout=0)
    try:
        lock.acquire()
    except filelock.Timeout:
        return  # another check is under way
    try:
        if time.time() - read_stamp(path).checked_at < DAY:
            return  # another process has just made it
        mode = str(ctx.config.get("auto_update"))
        policy = str(ctx.config.get("update_policy"))
        problems: list[str] = []
        installed: list[str] = []
        outdated = []
        itself = None
        try:
            found = survey_here(ctx, policy)
        except ToolrunError as error:
            problems.append(error.message)
        else:
            problems.extend(found.problems)
            itself = found.itself.wanted if found.itself is not None else None
            for row in found.outdated:
                if mode != "install":
                    outdated.append(row)
                    continue
                registry = found.available.versions[row.name][row.wanted]
                try:
                    ctx.installer.install(registry, row.name, row.wanted)
                except ToolrunError as error:
                    problems.append(error.message)
                    outdated.append(row)
                else:
                    installed.append(f"{row.name} {row.wanted}")
        stamp = read_stamp(path)  # as it is now: a command may have printed a notice since
        stamp.checked_at = time.time()
        stamp.mode = mode
        stamp.outdated = outdated
        stamp.installed = installed
        stamp.self_newer = itself
        stamp.problems = problems
        write_stamp(path, stamp)
    finally:
        lock.release()


def main(argv: list[str] | None = None) -> int:
    from .context import Context
    from .errors import handled

    args = sys.argv[1:] if argv is None else argv
    with handled() as outcome:
        ctx = Context.from_environment(offline="--offline" in args)
        try:
            run_check(ctx)
        finally:
            ctx.close()
    return outcome[0]


if __name__ == "__main__":
    sys.exit(main())
