"""``toolrun cmd toolchain=export-job [key=value ...]``: the original design's way to start a
run from the command line, the words of ``POST /cmd`` as ``key=value``; a toolchain's run
or one tool's, here or with ``--remote`` on a daemon."""

from __future__ import annotations

from ..errors import UsageError
from ..records import field, record
from .context import Context

TOOL_KEYS = ("cmd", "version")


@record(frozen=True)
class CmdWords:
    """What ``toolrun cmd`` was told: a toolchain and its params, or a tool, its version spec
    and (after ``--``) its arguments."""

    toolchain: str | None = None
    params: list[str] = field(default_factory=list)  # key=value, as `run` takes them
    cmd: str | None = None
    version: str | None = None


def parse_words(words: list[str]) -> CmdWords:
    """``toolchain=NAME [param=value ...]`` or ``cmd=TOOL [version=SPEC]``."""
    pairs: list[tuple[str, str]] = []
    for index, word in enumerate(words, 1):
        key, equals, value = word.partition("=")
        if not equals or not key:
            raise UsageError(
                f"argument {index} ({word!r}) is not key=value",
                hint="toolrun cmd toolchain=export-job table=d02, or cmd=uexp version=0.1 -- ARGS",
            )
        pairs.append((key, value))
    named = dict(pairs)
    toolchain, cmd = named.get("toolchain"), named.get("cmd")
    if toolchain is not None and cmd is not None:
        raise UsageError("name a toolchain (toolchain=NAME) or a tool (cmd=TOOL), not both")
    if toolchain is not None:
        if not toolchain:
            raise UsageError("toolchain= needs a name")
        if "version" in named:
            raise UsageError("version= is a tool's (cmd=TOOL); a toolchain pins its own")
        return CmdWords(
            toolchain=toolchain, params=[f"{k}={v}" for k, v in pairs if k != "toolchain"]
        )
    if cmd is None:
        raise UsageError(
            "name a toolchain (toolchain=NAME) or a tool (cmd=TOOL)",
            hint="toolrun cmd toolchain=export-job",
        )
    if not cmd:
        raise UsageError("cmd= needs a tool's name")
    extra = [k for k, _ in pairs if k not in TOOL_KEYS]
    if extra:
        raise UsageError(
            f"{extra[0]}= is not for a tool: its arguments go after --",
            hint=f"toolrun cmd cmd={cmd} -- ARGS",
        )
    return CmdWords(cmd=cmd, version=named.get("version") or None)


def cmd(
    ctx: Context,
    words: list[str],
    args: list[str],
    *,
    timeout: str | None = None,
    as_json: bool = False,
) -> None:
    from . import run_commands

    wanted = parse_words(words)
    if wanted.toolchain is not None:
        if args:
            raise UsageError("a toolchain takes params as key=value, not arguments after --")
        run_commands.run(
            ctx, wanted.toolchain, wanted.params, as_json=as_json, timeout=timeout, tui=False
        )
        return
    assert wanted.cmd is not None
    if as_json:
        raise UsageError("--json is for a toolchain's run; a tool's output passes through")
    spec = f"{wanted.cmd}@{wanted.version}" if wanted.version else wanted.cmd
    run_commands.exec_(ctx, spec, args, timeout=timeout)
