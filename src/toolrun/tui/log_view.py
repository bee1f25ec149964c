"""A log of any size: lines are read from the file when they scroll into view."""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path
from typing import ClassVar

from rich.segment import Segment
from rich.style import Style
from textual.binding import Binding, BindingType
from textual.geometry import Size
from textual.scroll_view import ScrollView
from textual.strip import Strip

from ..history.log_index import LogIndex

PAGE = 200
CACHED_PAGES = 32
INDEX_SECONDS = 0.05  # indexing runs in slices on a timer, so keys keep answering


class LogView(ScrollView, can_focus=True):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("j", "scroll_down", "Down", show=False),
        Binding("k", "scroll_up", "Up", show=False),
    ]

    """Shows a run's ``events.jsonl`` as lines, indexing it a slice at a time.

    A ``live`` view keeps reading as the file grows and follows its tail until the user
    scrolls up; ``follow()`` resumes. Only visible lines are ever read back, so the cost of a
    tick is the same whether a step prints ten lines a second or fifty thousand.
    """

    DEFAULT_CSS = """
    LogView { background: $surface; }
    """

    def __init__(
        self, path: Path, *, prefix: bool, live: bool = False, id: str | None = None
    ) -> None:
        super().__init__(id=id)
        self.path = path
        self.prefix = prefix
        self.index = LogIndex(path, prefix=prefix)
        self.match: tuple[int, str] | None = None  # (line, text) of the last search hit
        self.live = live
        self.following = live
        self._pages: OrderedDict[int, list[str]] = OrderedDict()
        self._width = 0
        self.done = False

    def on_mount(self) -> None:
        self._timer = self.set_interval(INDEX_SECONDS, self._index_some)
        self._ticking = True
        self._index_some()

    def _index_some(self) -> None:
        if self.done:
            return
        before = self.index.line_count
        at_end = self.is_vertical_scroll_end
        finished = self.index.scan()
        if finished and not self.live:
            self.done = True
            self._timer.stop()
            self._ticking = False
        if self.index.line_count != before:
            # The last page may have grown: forget it rather than show it short.
            self._pages.pop(before // PAGE, None)
            self.virtual_size = Size(max(self._width, self.size.width), self.index.line_count)
            self.following = self.following and at_end
            if self.following:
                self.scroll_end(animate=False, immediate=True)
            self.refresh()

    def finish(self) -> None:
        """The file will not grow any more: index what is left, then stop reading it."""
        self.live = False

    def show_step(self, step: str | None) -> None:
        """Only ``step``'s lines, or every step's with None: the file is indexed again."""
        self.index = LogIndex(self.path, prefix=self.prefix and step is None, step=step)
        self._pages.clear()
        self.match = None
        self.done = False
        self.virtual_size = Size(self.size.width, 0)
        self.scroll_home(animate=False)
        if not self._ticking:  # a finished view reads the file once more
            self._timer = self.set_interval(INDEX_SECONDS, self._index_some)
            self._ticking = True
        self._index_some()

    def search(self, text: str, *, again: bool = False) -> None:
        """Find ``text`` below the last match (or the top of the screen), off the UI thread."""
        if not text:
            return
        start = self.match[0] + 1 if again and self.match is not None else self.scroll_offset.y
        self.run_worker(lambda: self._search(text, start), thread=True, exclusive=True)

    def _search(self, text: str, start: int) -> None:
        found = self.index.find(text, start)
        if found is None:
            self.app.call_from_thread(self.notify, f"{text!r} not found", severity="warning")
        else:
            self.app.call_from_thread(self.show_match, found, text)

    def show_match(self, number: int, text: str) -> None:
        self.match = (number, text)
        self.following = False
        self.scroll_to(y=max(number - self.size.height // 2, 0), animate=False)
        self.refresh()

    def follow(self) -> None:
        self.following = True
        self.scroll_end(animate=False, immediate=True)

    def line(self, number: int) -> str:
        page = number // PAGE
        lines = self._pages.get(page)
        if lines is None:
            lines = self.index.lines(page * PAGE, PAGE)
            self._pages[page] = lines
            if len(self._pages) > CACHED_PAGES:
                self._pages.popitem(last=False)
            widest = max((len(text) for text in lines), default=0)
            if widest > self._width:
                self._width = widest
                self.virtual_size = Size(widest, self.index.line_count)
        else:
            self._pages.move_to_end(page)
        offset = number - page * PAGE
        return lines[offset] if offset < len(lines) else ""

    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y = self.scroll_offset
        number = scroll_y + y
        width = self.size.width
        if number >= self.index.line_count:
            return Strip.blank(width)
        text = self.line(number)[scroll_x : scroll_x + width]
        if self.match is not None and self.match[0] == number:
            return Strip([Segment(text, Style(reverse=True))]).extend_cell_length(width)
        return Strip([Segment(text)]).extend_cell_length(width)
