"""Progress bars for work that takes long (tool install and upgrade, registry build): rich's,
on stderr, and only at a terminal; in a pipe or a log nothing extra is written."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator

from ..tools.watching import QUIET, Watch

TYPE_CHECKING = False
if TYPE_CHECKING:
    from rich.progress import Progress, TaskID

    from ..tools.installer import Installer


def wants_progress() -> bool:
    """A person watching stderr: a terminal, a capable TERM, not CI."""
    return (
        sys.stderr.isatty()
        and os.environ.get("TERM", "") not in ("", "dumb")
        and "CI" not in os.environ
    )


class BarWatch(Watch):
    """One bar per piece of work: bytes with their speed and the time left, or a count."""

    def __init__(self, bytes_bar: Progress, count_bar: Progress) -> None:
        self.bars = {"bytes": bytes_bar, "count": count_bar}
        self.current: tuple[Progress, TaskID] | None = None

    def begin(self, label: str, total: int | None, *, unit: str = "bytes") -> None:
        bar = self.bars["bytes" if unit == "bytes" else "count"]
        self.current = (bar, bar.add_task(label, total=total))

    def advance(self, amount: int) -> None:
        if self.current is not None:
            bar, task = self.current
            bar.advance(task, amount)

    def end(self) -> None:
        if self.current is not None:
            bar, task = self.current
            bar.update(task, completed=bar.tasks[task].total or 0)
            self.current = None


@contextlib.contextmanager
def progress_bars() -> Iterator[Watch]:
    """A Watch that draws bars while the block runs, or QUIET when nobody would see them."""
    if not wants_progress():
        yield QUIET
        return
    from rich.console import Console, Group
    from rich.live import Live
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    console = Console(stderr=True)
    label = TextColumn("{task.description}")
    bytes_bar = Progress(
        label, BarColumn(), DownloadColumn(), TransferSpeedColumn(), TimeRemainingColumn(),
        console=console,
    )  # fmt: skip
    count_bar = Progress(label, BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                         console=console)  # fmt: skip
    with Live(Group(bytes_bar, count_bar), console=console, transient=True, refresh_per_second=10):
        yield BarWatch(bytes_bar, count_bar)


@contextlib.contextmanager
def installs_watched(installer: Installer) -> Iterator[None]:
    """The installer's downloads drawn as bars while the block runs."""
    with progress_bars() as watch:
        installer.watch = watch
        try:
            yield
        finally:
            installer.watch = QUIET
