"""Browsing the history: a paged table of runs, a filter, the selected run's toolchain's
recent durations, and each run's details and log."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, ClassVar

from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.widgets import DataTable, Footer, Input, Static

from ..history.model import RUN_STATES
from ..records import record
from ..runs.event_text import counted
from ..runs.events import read_events
from .confirm import Confirm
from .history_table import HistoryTable
from .keys_panel import toggle_keys
from .run_screen import RunScreen
from .trend import Trend

if TYPE_CHECKING:
    from textual.app import SystemCommand
    from textual.screen import Screen

    from ..history.store import HistoryQuery, Store

REFRESH_SECONDS = 1.0
STATUSES = RUN_STATES


@record(frozen=True)
class Filter:
    """What the filter box asks for: ``failed export-job d01`` or ``status:failed``."""

    status: str | None = None
    toolchain: str | None = None
    text: str | None = None


def parse_filter(text: str, toolchains: Iterable[str] = ()) -> Filter:
    """Words that name a status or a known toolchain filter by it; the rest is free text."""
    status = toolchain = None
    free: list[str] = []
    known = set(toolchains)
    for word in text.split():
        key, colon, value = word.partition(":")
        if colon and key == "status" and value:
            status = value
        elif colon and key == "toolchain" and value:
            toolchain = value
        elif word in STATUSES and status is None:
            status = word
        elif word in known and toolchain is None:
            toolchain = word
        else:
            free.append(word)
    return Filter(status, toolchain, " ".join(free) or None)


class HistoryApp(App[int]):
    TITLE = "toolrun history"
    CSS = """
    #filter { dock: bottom; display: none; }
    #filter.visible { display: block; }
    #status { height: 1; padding: 0 1; background: $boost; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("slash", "filter", "Filter", id="history.filter"),
        Binding("enter", "open", "Open", id="history.open", show=False),
        Binding("r", "rerun", "Rerun", id="history.rerun"),
        Binding("c", "cancel", "Cancel run", id="history.cancel"),
        Binding("d", "delete", "Delete", id="history.delete"),
        Binding("y", "copy_id", "Copy id", id="history.copy"),
        Binding("e", "export", "Export log", id="history.export"),
        Binding("question_mark", "keys", "Keys", id="history.help"),
        Binding("q,escape", "leave", "Quit", id="history.quit"),
    ]

    def action_keys(self) -> None:
        toggle_keys(self)

    def __init__(self, store: Store, query: HistoryQuery) -> None:
        super().__init__()
        self.store = store
        self.base_query = query
        self.rerun_id: str | None = None  # the CLI reruns it once the browser has closed

    def compose(self) -> ComposeResult:
        yield Static(id="status")
        yield Trend(self.store.list_runs)
        yield HistoryTable(self.store.list_runs)
        yield Input(placeholder="filter: failed, a toolchain, any text; enter applies", id="filter")
        yield Footer()

    def on_mount(self) -> None:
        self.apply_filter(Filter(self.base_query.status, self.base_query.toolchain))
        self.set_interval(REFRESH_SECONDS, self.refresh_active)

    def refresh_active(self) -> None:
        table = self.query_one(HistoryTable)
        if table.refresh_active():
            self.query_one(Trend).show(table.selected, again=True)

    # -- filtering -----------------------------------------------------------------------------

    def apply_filter(self, wanted: Filter) -> None:
        from ..records import replace

        query = replace(
            self.base_query, status=wanted.status, toolchain=wanted.toolchain, text=wanted.text
        )
        table = self.query_one(HistoryTable)
        table.show(query)
        self.query_one(Trend).show(table.selected)
        shown = [f"{k}={v}" for k, v in vars(wanted).items() if v]
        more = "" if table.exhausted else "+"
        self.query_one("#status", Static).update(
            f"{len(table.runs)}{more} {'run' if len(table.runs) == 1 and not more else 'runs'}"
            + (f"  filter: {' '.join(shown)}" if shown else "")
        )

    def action_filter(self) -> None:
        box = self.query_one("#filter", Input)
        box.add_class("visible")
        box.focus()

    def on_input_submitted(self, message: Input.Submitted) -> None:
        toolchains = {run.toolchain for run in self.query_one(HistoryTable).runs}
        self.apply_filter(parse_filter(message.value, toolchains))
        message.input.remove_class("visible")
        self.query_one(HistoryTable).focus()

    def on_data_table_row_highlighted(self, message: DataTable.RowHighlighted) -> None:
        table = self.query_one(HistoryTable)
        if message.data_table is not table:
            return
        if message.cursor_row < len(table.runs):
            self.query_one(Trend).show(table.runs[message.cursor_row])
        if message.cursor_row >= len(table.runs) - 1:
            table.load_more()

    def on_data_table_header_selected(self, message: DataTable.HeaderSelected) -> None:
        """A click on a column heading sorts by it; a second click reverses the order."""
        from ..records import replace

        table = self.query_one(HistoryTable)
        if message.data_table is not table or table.query_ is None:
            return
        column = str(message.column_key.value)
        current = table.query_
        descending = not current.descending if current.order == column else True
        table.show(replace(current, order=column, descending=descending))
        self.query_one(Trend).show(table.selected)
        arrow = "↓" if descending else "↑"
        self.query_one("#status", Static).update(
            f"{counted(len(table.runs), 'run')}, by {column} {arrow}"
        )

    def on_data_table_row_selected(self, message: DataTable.RowSelected) -> None:
        if message.data_table is self.query_one(HistoryTable):
            self.action_open()

    # -- actions on the selected run -----------------------------------------------------------

    def action_open(self) -> None:
        run = self.query_one(HistoryTable).selected
        if run is None:
            return
        path = self.store.run_dir(run.id) / "events.jsonl"
        self.push_screen(RunScreen(run, self.store.steps(run.id), path))

    def action_rerun(self) -> None:
        run = self.query_one(HistoryTable).selected
        if run is None or run.is_active:
            self.notify("choose a run that has ended")
            return
        self.rerun_id = run.id
        self.exit(0)

    def action_cancel(self) -> None:
        run = self.query_one(HistoryTable).selected
        if run is None or not run.is_active:
            self.notify("only a queued or running run can be cancelled")
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self.store.request_cancel(run.id)
                self.notify(f"cancel requested for {run.id}")

        self.push_screen(Confirm(f"Cancel run {run.id}?"), answered)

    def action_delete(self) -> None:
        run = self.query_one(HistoryTable).selected
        if run is None:
            return
        if run.is_active:
            self.notify("cancel the run before deleting it", severity="warning")
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self.store.delete_run(run.id)
                if isinstance(self.screen, RunScreen):
                    self.pop_screen()  # the details of a run that is gone
                table = self.query_one(HistoryTable)
                assert table.query_ is not None
                table.show(table.query_)
                self.query_one(Trend).show(table.selected)
                self.notify(f"deleted {run.id}")

        self.push_screen(Confirm(f"Delete run {run.id} and its files?"), answered)

    def action_copy_id(self) -> None:
        run = self.query_one(HistoryTable).selected
        if run is not None:
            self.copy_to_clipboard(run.id)
            self.notify(f"copied {run.id}")

    def action_export(self) -> None:
        run = self.query_one(HistoryTable).selected
        if run is None:
            return
        from pathlib import Path

        from ..runs.event_text import display_lines

        target = Path.cwd() / f"toolrun-{run.id}.log"
        prefix = len(self.store.steps(run.id)) > 1
        with target.open("w", encoding="utf-8") as file:
            for event in read_events(self.store.run_dir(run.id) / "events.jsonl"):
                file.writelines(line + "\n" for line in display_lines(event, prefix=prefix))
        self.notify(f"wrote {target}")

    def action_leave(self) -> None:
        box = self.query_one("#filter", Input)
        if box.has_class("visible"):
            box.remove_class("visible")
            self.query_one(HistoryTable).focus()
            return
        self.exit(0)

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:  # type: ignore[type-arg]
        from textual.app import SystemCommand

        yield from super().get_system_commands(screen)
        yield SystemCommand(
            "Filter runs", "Filter by status, toolchain or text", self.action_filter
        )
        yield SystemCommand("Open run", "Steps, versions, params and log", self.action_open)
        yield SystemCommand("Rerun", "Run the selected run again", self.action_rerun)
        yield SystemCommand("Cancel run", "Cancel the selected run", self.action_cancel)
        yield SystemCommand("Delete run", "Delete the selected run", self.action_delete)
        yield SystemCommand("Copy run id", "Copy the selected run's id", self.action_copy_id)
        yield SystemCommand("Export log", "Write the selected run's log", self.action_export)
