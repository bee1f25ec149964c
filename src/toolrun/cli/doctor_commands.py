"""``toolrun doctor``: one line per check, with what to do about each one not ok."""

from __future__ import annotations

from ..doctor import OK, PROBLEM, WARNING, run_checks, worst
from .context import Context
from .errors import ExitCode
from .output import print_json

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ..config import Config
    from ..tools.registry import Registry

EXIT_PROBLEM = 1


def doctor(ctx: Context, *, as_json: bool = False) -> None:
    def registries(config: Config) -> list[Registry]:
        from ..tools.registry import registries_from_config

        # No index cache: the doctor asks each registry and leaves no copy behind.
        return registries_from_config(config, cwd=ctx.cwd)

    checks = run_checks(
        ctx.paths,
        toolchain_dirs=ctx.toolchain_dirs(),
        registries=registries,
        offline=ctx.offline,
    )
    status = worst(checks)
    if as_json:
        from ..json_views import doctor_json  # msgspec: for --json only

        print_json(doctor_json(checks, status))
    else:
        width = max(len(check.name) for check in checks)
        lines = []
        for check in checks:
            lines.append(f"{check.status:<8} {check.name:<{width}}  {check.detail}")
            if check.fix and check.status != OK:
                lines.append(f"{'':<8} {'':<{width}}  fix: {check.fix}")
        problems = sum(check.status == PROBLEM for check in checks)
        warnings = sum(check.status == WARNING for check in checks)
        if problems or warnings:
            lines.append(f"{_count(problems, 'problem')}, {_count(warnings, 'warning')}")
        else:
            lines.append("everything is in order")
        print("\n".join(lines), flush=True)
    if status == PROBLEM:
        raise ExitCode(EXIT_PROBLEM)


def _count(number: int, word: str) -> str:
    return f"{number} {word}{'' if number == 1 else 's'}"
