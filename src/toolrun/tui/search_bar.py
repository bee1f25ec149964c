"""The `/` box that searches a LogView."""

from __future__ import annotations

from textual.widgets import Input

from .log_view import LogView


class SearchBar(Input):
    """Hidden until opened; enter searches the view it was given, escape closes it."""

    DEFAULT_CSS = """
    SearchBar { dock: bottom; display: none; }
    SearchBar.open { display: block; }
    """

    def __init__(self, view_id: str) -> None:
        super().__init__(placeholder="search the log; enter finds, n finds the next", id="search")
        self.view_id = view_id
        self.last = ""

    def open(self) -> None:
        self.add_class("open")
        self.focus()

    def close(self) -> None:
        self.remove_class("open")
        self.screen.query_one(f"#{self.view_id}", LogView).focus()

    def on_input_submitted(self, message: Input.Submitted) -> None:
        message.stop()
        self.last = message.value
        self.screen.query_one(f"#{self.view_id}", LogView).search(self.last)
        self.close()

    def key_escape(self) -> None:
        self.close()

    def search_again(self) -> None:
        self.screen.query_one(f"#{self.view_id}", LogView).search(self.last, again=True)
