"""``toolrun init``: a starter ``toolchains/`` and a folder registry with one tool, so a team
starting from nothing has a toolchain that runs at once and a pattern to copy."""

from __future__ import annotations

from pathlib import Path

from ..errors import StorageError, UsageError
from .output import info

TOOLCHAIN = "hello"
TOOL, VERSION = "greet", "1.0.0"

HELLO_YAML = """\
# A toolchain: steps, each a registered tool at a version, run in order (or as `needs` say).
# Run it from this folder with `toolrun run hello`, or `toolrun run hello who=team`.
# Every key is described in toolrun's docs/toolchains.md; `toolrun toolchain validate hello`
# checks this file, naming file:line:col of each mistake.
description: Greet someone, then greet them louder
params:
  who:
    type: string
    default: world
    description: whom to greet
# env: {LOG_LEVEL: info}        # variables for every step
timeout: 5m                     # the whole run (exit 124 when it is reached)
toolchain:
  - greet:
      cmd: greet                # a tool in ./registry (or any configured registry)
      version: "^1.0"           # a spec: latest, 1.0.0, 1.0, ^1.0, ">=1.0,<2" (quote it)
      args: ["${{ params.who }}"]
  - shout:
      cmd: greet
      version: "^1.0"
      needs: [greet]            # the default is the step before; [] starts at once
      # What `greet` wrote to $TOOLRUN_OUTPUT as greeting=...:
      args: [--upper, "${{ steps.greet.outputs.greeting }}"]
      # retries: {max: 2, delay: 1s, backoff: 2}
      # if: ${{ params.who != 'nobody' }}
      # continue_on_error: true
"""

GREET_TOML = f"""\
# One version of a tool: this folder's files, each pinned by sha256 below. toolrun installs a
# copy under its data folder and refuses it if a file differs from its hash.
name = "{TOOL}"
version = "{VERSION}"
description = "Print a greeting (the starter tool of toolrun init; replace it with your own)"
# {{python}} is the Python toolrun runs on; {{tool_dir}} the installed copy's folder.
command = ["{{python}}", "{{tool_dir}}/greet.py"]

# Written by `toolrun registry rehash registry/`: run it again after changing a file. A new
# version is a new folder beside this one (registry/{TOOL}/1.1.0/).
[files]
"""

GREET_PY = '''\
"""greet: print a greeting, and hand it to later steps as the output `greeting`."""

import os
import sys


def main(args: list[str]) -> int:
    upper = "--upper" in args
    words = [arg for arg in args if arg != "--upper"]
    text = " ".join(words) if upper else f"Hello, {' '.join(words) or 'world'}!"
    print(text.upper() if upper else text)
    output = os.environ.get("TOOLRUN_OUTPUT")  # set by toolrun for each step
    if output:
        with open(output, "a", encoding="utf-8") as file:
            file.write(f"greeting={text}\\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
'''


def starter_files(root: Path) -> dict[Path, str]:
    """What ``toolrun init`` writes below ``root``."""
    tool_dir = root / "registry" / TOOL / VERSION
    return {
        root / "toolchains" / f"{TOOLCHAIN}.yaml": HELLO_YAML,
        tool_dir / "tool.toml": GREET_TOML,
        tool_dir / "greet.py": GREET_PY,
    }


def init(root: Path) -> None:
    """Write the starter files below ``root``, refusing to overwrite any file there."""
    from ..tools.publish import rehash

    if root.exists() and not root.is_dir():
        raise UsageError(f"{root} is a file, not a folder: name a folder to set up")
    files = starter_files(root)
    existing = [path for path in files if path.exists() or path.is_symlink()]
    if existing:
        names = ", ".join(str(path) for path in existing)
        raise UsageError(
            f"nothing was written: {names} exist{'s' if len(existing) == 1 else ''} already",
            hint="init in another folder (toolrun init PATH), or move those aside",
        )
    try:
        for path, text in files.items():
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("x", encoding="utf-8", newline="\n") as file:
                file.write(text)
    except FileExistsError as exc:  # made meanwhile by someone else: still never overwritten
        raise UsageError(f"nothing more was written: {exc.filename} appeared meanwhile") from None
    except OSError as exc:
        raise StorageError(f"cannot write {exc.filename}: {exc.strerror}") from None
    rehash(root / "registry" / TOOL / VERSION)
    for path in files:
        info(f"wrote {path}")
    shown = "" if root.resolve() == Path.cwd().resolve() else f"cd {root} && "
    info(f"next: {shown}toolrun run {TOOLCHAIN}   (then: toolrun history, toolrun stats)")
