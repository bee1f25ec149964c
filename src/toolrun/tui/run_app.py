"""Watching a run live: its steps, its output, cancel and quit.

The run is a ``LiveRun``: this machine's engine running inside the app's own event loop
(``EngineRun``), or a daemon's run followed over SSE (``cli.remote_run.DaemonRun``). State
events are collected as they come and shown by a timer every 50 ms; output is read back from
the run's events.jsonl by a LogView, which reads only the lines on screen, so a step writing
tens of thousands of lines a second costs the screen the same as one writing ten. A second
timer advances the clocks (the header's, the running steps') once a second, and only while
one of them runs.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, Protocol

from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.widgets import DataTable, Footer, Static

from ..errors import ToolrunError
from ..runs import events as ev
from ..runs.event_text import format_duration
from ..runs.events import Event
from .confirm import Confirm
from .keys_panel import toggle_keys
from .log_view import LogView
from .search_bar import SearchBar
from .step_table import RETRYING, StepTable, ticking_duration

if TYPE_CHECKING:
    from ..history.store import RunRecord
    from ..runs.engine import Engine, RunHandle

FLUSH_SECONDS = 0.05
TICK_SECONDS = 1.0
EXIT_CODES = {"succeeded": 0, "failed": 1, "timed_out": 124, "cancelled": 130, "interrupted": 1}


class LiveRun(Protocol):
    """A run as the view shows and controls it."""

    id: str
    toolchain: str
    step_ids: list[str]
    needs: dict[str, tuple[str, ...]]  # what each step waits for
    log_path: Path  # its events.jsonl, written as the run goes

    def on_event(self, callback: Callable[[Event], None]) -> None:
        """Call ``callback`` in the app's event loop for every event from now on."""
        ...

    async def wait(self) -> RunRecord:
        """Run it (or follow it) to its end; its final record."""
        ...

    def cancel(self) -> None: ...

    def control(self, wanted: int) -> None:
        """Pause (1), pause and freeze the running steps (2), or resume (0)."""
        ...


class EngineRun:
    """A run of this machine's engine, run inside the app's event loop."""

    def __init__(self, engine: Engine, handle: RunHandle) -> None:
        self.engine = engine
        self.handle = handle
        self.id = handle.id
        self.toolchain = handle.toolchain.name
        self.step_ids = [step.id for step in handle.steps]
        self.needs = {step.id: step.step.needs for step in handle.steps}
        self.kept = tuple(handle.options.carried)  # steps a rerun keeps from the run before
        self.log_path = handle.channel.log.path

    def on_event(self, callback: Callable[[Event], None]) -> None:
        self.handle.channel.on_event(callback)

    async def wait(self) -> RunRecord:
        return await self.engine.execute(self.handle)

    def cancel(self) -> None:
        self.handle.cancel()

    def control(self, wanted: int) -> None:
        self.handle.control(wanted)


class RunApp(App[int]):
    """Shows one run; the app's return value is the run's exit code."""

    TITLE = "toolrun"
    CSS = """
    Screen:inline { height: 80vh; }
    #header { height: 1; padding: 0 1; background: $boost; }
    #log { border-top: solid $primary; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("c", "cancel", "Cancel run", id="run.cancel"),
        Binding("p", "pause", "Pause/Resume", id="run.pause"),
        Binding("P", "pause_now", "Pause now (freeze)", id="run.pause_now", show=False),
        Binding("q", "quit_run", "Quit", id="run.quit"),
        Binding("r", "rerun", "Rerun", id="run.rerun"),
        Binding("f,end", "follow", "Follow output", id="run.follow"),
        Binding("slash", "search", "Search", id="run.search"),
        Binding("n", "search_again", "Next match", id="run.search_next", show=False),
        Binding("a", "all_steps", "All steps", id="run.all_steps", show=False),
        Binding("question_mark", "keys", "Keys", id="run.help"),
    ]

    def action_keys(self) -> None:
        toggle_keys(self)

    def __init__(self, run: LiveRun, *, clock: Callable[[], float] = time.time) -> None:
        super().__init__()
        self.live_run = run
        self.clock = clock
        self.status = "queued"
        self.final: RunRecord | None = None
        self.rerun_requested = False
        self.error: ToolrunError | None = None
        self._pending: list[Event] = []
        self._started = clock()
        run.on_event(self._receive)

    def compose(self) -> ComposeResult:
        run = self.live_run
        yield Static(id="header")
        # Only this machine's runs say which steps a rerun keeps (EngineRun.kept).
        yield StepTable(run.step_ids, run.needs, kept=getattr(run, "kept", ()))
        yield LogView(run.log_path, prefix=len(run.step_ids) > 1, live=True, id="log")
        yield SearchBar("log")
        yield Footer()

    def on_mount(self) -> None:
        self.set_interval(FLUSH_SECONDS, self.flush_events)
        self._ticker = self.set_interval(TICK_SECONDS, self.tick, pause=True)
        self.run_worker(self._execute(), exclusive=True, name="run")
        self._show_header()
        self._wind_clock()

    async def _execute(self) -> None:
        try:
            self.final = await self.live_run.wait()
        except ToolrunError as error:  # a daemon's run lost on the way: the CLI reports it
            self.error = error
            self.exit(None)
            return
        self.status = self.final.status
        self.flush_events()
        self.query_one(StepTable).refresh_steps()
        self._show_header()
        self._wind_clock()
        self.query_one(LogView).finish()
        self.refresh_bindings()
        self.notify(f"run {self.final.status}; q to quit", timeout=10)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """The footer offers cancel while the run goes and rerun once it has ended."""
        if action in ("cancel", "pause", "pause_now"):
            return self.running
        if action == "rerun":
            return not self.running
        return True

    # -- events to widgets ---------------------------------------------------------------------

    def _receive(self, event: Event) -> None:
        self._pending.append(event)

    def flush_events(self) -> None:
        """Show the state events collected since the last flush (output is the LogView's)."""
        pending, self._pending = self._pending, []
        changed: set[str] = set()
        if self._widgets_gone():
            return
        table = self.query_one(StepTable)
        for event in pending:
            if event.kind != ev.OUTPUT:
                self._apply(event, table, changed)
        if not changed:
            return
        changed.discard("")
        table.refresh_steps(changed)
        self._show_header()
        self._wind_clock()

    def _apply(self, event: Event, table: StepTable, changed: set[str]) -> None:
        """Update the views from ``event``; ``changed`` gets the steps it touched ("" for the
        run alone)."""
        data = event.data
        changed.add("")
        if event.kind == ev.RUN_STARTED:
            self.status = "running"
        elif event.kind == ev.RUN_PAUSED:
            self.status = "paused"
            for view in table.steps.values():
                if data.get("now"):
                    view.freeze(event.time)
                else:  # from frozen back to a plain pause: the processes go on
                    view.thaw(event.time)
            changed.update(table.steps)
        elif event.kind == ev.RUN_RESUMED:
            self.status = "running"
            for view in table.steps.values():
                view.thaw(event.time)
            changed.update(table.steps)
        elif event.kind == ev.RUN_FINISHED:
            self.status = data.get("status", self.status)
            for view in table.steps.values():
                if view.status == RETRYING:
                    # The run ended while the step waited to retry: a cancel, which the
                    # engine records without an event of the step's.
                    view.status = "cancelled"
                    view.finished = event.time
                    changed.add(view.step_id)
        elif event.step in table.steps:
            view = table.steps[event.step]
            changed.add(event.step)
            if event.kind == ev.STEP_STARTED:
                view.status = "running"
                view.attempts = event.attempt or 1
                view.tool = f"{data.get('tool', '')} {data.get('version', '')}".strip()
                view.started = view.started or event.time
                view.finished = None  # a retry: the step's clock runs on
            elif event.kind == ev.STEP_FINISHED:
                view.thaw(event.time)
                view.status = data.get("status", view.status)
                view.finished = event.time
            elif event.kind == ev.STEP_SKIPPED:
                view.status = data.get("status", "skipped")
            elif event.kind == ev.MESSAGE and view.done and (event.attempt or 0) > view.attempts:
                # The engine announces a retry as a message of the attempt to come, after the
                # last one ended and before waiting out its delay: the step is not done yet,
                # and its time goes on.
                view.status = RETRYING
                view.finished = None

    def tick(self) -> None:
        if self._widgets_gone():
            return
        self.query_one(StepTable).tick()
        self._show_header()

    def _widgets_gone(self) -> bool:
        """The app is being taken down: a timer that fires now finds its widgets gone (CI saw
        the flush meet an empty screen as a test's app closed)."""
        return not self.query(StepTable)

    def _wind_clock(self) -> None:
        """Run the once-a-second clock only while some time shown goes on."""
        table = self.query_one(StepTable)
        if self.running and (self.status in ("queued", "running") or table.ticking):
            self._ticker.resume()
        else:
            self._ticker.pause()

    def _show_header(self) -> None:
        final = self.final
        if final is not None and final.started_at and final.finished_at:
            elapsed = format_duration(final.finished_at - final.started_at)
        else:
            elapsed = ticking_duration(self.clock() - self._started)
        table = self.query_one(StepTable)
        self.query_one("#header", Static).update(
            f"[b]run {self.live_run.id}[/b]  {self.live_run.toolchain}  "
            f"[b]{self.status}[/b]  {table.done_count}/{len(table.steps)} steps done  {elapsed}"
        )

    # -- actions -------------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self.final is None

    def action_cancel(self) -> None:
        if not self.running:
            self.notify("the run has ended")
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self.live_run.cancel()

        self.push_screen(Confirm(f"Cancel run {self.live_run.id}?"), answered)

    def action_pause(self) -> None:
        """p: pause (no further step starts), or resume a paused run."""
        if not self.running:
            self.notify("the run has ended")
            return
        resume = self.status == "paused"
        self.live_run.control(0 if resume else 1)
        self.notify("resuming" if resume else "pausing: no further step starts; p resumes")

    def action_pause_now(self) -> None:
        """P: pause and freeze the running steps where they are."""
        if not self.running:
            self.notify("the run has ended")
            return
        self.live_run.control(2)
        self.notify("pausing: the running steps are frozen; p resumes")

    def action_rerun(self) -> None:
        if self.running:
            self.notify("the run is still going; r reruns it once it has ended")
            return
        self.rerun_requested = True
        self.exit(self.exit_code)

    def action_quit_run(self) -> None:
        if not self.running:
            self.exit(self.exit_code)
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self.live_run.cancel()
                self.run_worker(self._quit_when_done(), name="quit")

        self.push_screen(Confirm("The run is still going. Cancel it and quit?"), answered)

    async def _quit_when_done(self) -> None:
        for worker in self.workers:
            if worker.name == "run":
                await worker.wait()
        self.exit(self.exit_code)

    def action_follow(self) -> None:
        self.query_one(LogView).follow()

    def action_search(self) -> None:
        self.query_one(SearchBar).open()

    def action_search_again(self) -> None:
        self.query_one(SearchBar).search_again()

    def on_data_table_row_selected(self, message: DataTable.RowSelected) -> None:
        """Enter on a step shows only its output; `a` shows every step again."""
        step = str(message.row_key.value)
        self.query_one(LogView).show_step(step)
        self.notify(f"showing {step} only; a shows all steps")

    def action_all_steps(self) -> None:
        self.query_one(LogView).show_step(None)

    @property
    def exit_code(self) -> int:
        return EXIT_CODES.get(self.final.status if self.final else self.status, 1)
