"""The ``?`` panel: the keys the screen answers to, toolrun's own first.

Textual's own panel lists the focused widget's keys (a table's cursor and page keys) before
the app's, so the keys a user came for were at the bottom of a long list.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from rich.table import Table
from rich.text import Text
from textual.app import App
from textual.widgets import Static


class KeysPanel(Static):
    DEFAULT_CSS = """
    KeysPanel {
        dock: right;
        width: auto;
        max-width: 50%;
        height: 1fr;
        padding: 0 1;
        border-left: vkey $foreground 30%;
        background: $panel;
    }
    """

    def on_mount(self) -> None:
        self.update(self.keys_table())

    def keys_table(self) -> Table:
        ours: dict[str, list[str]] = defaultdict(list)
        theirs: dict[str, list[str]] = defaultdict(list)
        descriptions: dict[str, str] = {}
        for node, binding, enabled, _tooltip in self.screen.active_bindings.values():
            if binding.system or not enabled or not binding.description:
                continue
            mine = node is self.app or node is self.screen
            group = ours if mine else theirs
            group[binding.description].append(self.app.get_key_display(binding))
            descriptions[binding.description] = binding.description
        table = Table(show_header=False, box=None, padding=(0, 1))
        table.add_column(justify="right", style="bold")
        table.add_column()
        for title, group in (("toolrun", ours), ("moving around", theirs)):
            if not group:
                continue
            table.add_row("", Text(title, style="italic dim"))
            for description, keys in group.items():
                table.add_row(" ".join(dict.fromkeys(keys)), description)
            table.add_row("", "")
        return table


def toggle_keys(app: App[Any]) -> None:
    """Show the panel, or hide it when it is shown."""
    panels = app.screen.query(KeysPanel)
    if panels:
        panels.remove()
    else:
        app.screen.mount(KeysPanel())
