"""Shell completion scripts: small shims that ask ``toolrun`` itself what to complete."""

from __future__ import annotations

from ..errors import UsageError

SHELLS = ("bash", "zsh", "fish", "powershell")
COMPLETE_VAR = "_TOOLRUN_COMPLETE"


def completion_script(shell: str) -> str:
    if shell not in SHELLS:
        raise UsageError(f"unknown shell {shell!r}; choose one of {', '.join(SHELLS)}")
    # Typer keeps its script templates in a private module; a test compares the committed
    # completions/ with this output, so a change in typer shows up as a failing test.
    from typer._completion_shared import get_completion_script

    script = get_completion_script(prog_name="toolrun", complete_var=COMPLETE_VAR, shell=shell)
    return script + "\n"
