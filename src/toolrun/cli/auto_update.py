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
    from ..automation.tool_updates import run_check as check

    check(
        ctx.resolver,
        ctx.installer,
        ctx.toolchain_dirs(),
        ctx.paths.data_dir,
        mode=str(ctx.config.get("auto_update")),
        policy=str(ctx.config.get("update_policy")),
    )


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
