"""Regenerate the screenshots in docs/ from the real TUI on the example toolchain."""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


async def run_view(out: Path) -> None:
    from toolrun.cli.context import Context
    from toolrun.tui.run_app import RunApp

    ctx = Context.from_environment()
    handle = ctx.engine.prepare(ctx.load_toolchain("export-job"), {})
    app = RunApp(ctx.engine, handle)
    async with app.run_test(size=(110, 32)) as pilot:
        while app.final is None:
            await pilot.pause(0.05)
        await pilot.pause(0.3)
        app.save_screenshot(filename=out.name, path=str(out.parent))


def main() -> None:
    os.chdir(REPO)
    with tempfile.TemporaryDirectory() as home:
        os.environ["TOOLRUN_HOME"] = home
        asyncio.run(run_view(REPO / "docs" / "tui-run.svg"))
    print("wrote docs/tui-run.svg", file=sys.stderr)


if __name__ == "__main__":
    main()
