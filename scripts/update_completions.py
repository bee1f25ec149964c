"""Regenerate completions/ from the CLI; a test fails when the committed scripts are stale."""

from __future__ import annotations

from pathlib import Path

from toolrun.cli.completion import SHELLS, completion_script

SUFFIXES = {"bash": "bash", "zsh": "zsh", "fish": "fish", "powershell": "ps1"}


def main() -> None:
    folder = Path(__file__).resolve().parent.parent / "completions"
    folder.mkdir(exist_ok=True)
    for shell in SHELLS:
        path = folder / f"toolrun.{SUFFIXES[shell]}"
        path.write_text(completion_script(shell), encoding="utf-8", newline="\n")
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
