"""One-line, human-readable accounts of a run's events, shared by every front end."""

from __future__ import annotations

from . import events as ev
from .events import Event

ICONS = {
    "pending": "·",
    "running": "▶",
    "succeeded": "✓",
    "failed": "✗",
    "timed_out": "⏱",
    "worker_lost": "↯",
    "cancelled": "■",
    "skipped": "○",
    "interrupted": "!",
}


def describe_event(event: Event) -> str | None:
    """A one-line account of a state change, or None for events that are not shown."""
    data = event.data
    step = event.step
    attempt = f" (attempt {event.attempt})" if event.attempt and event.attempt > 1 else ""
    if event.kind == ev.RUN_STARTED:
        return f"▶ run {data.get('run')}: {data.get('toolchain')}"
    if event.kind == ev.STEP_STARTED:
        tool = f": {data['tool']} {data['version']}" if "tool" in data else ""
        return f"▶ {step}{tool}{attempt}"
    if event.kind == ev.STEP_FINISHED:
        status = data.get("status", "")
        detail = data.get("error") or f"exit {data.get('exit_code')}"
        duration = data.get("duration")
        took = f" in {format_duration(duration)}" if duration is not None else ""
        return f"{ICONS.get(status, '·')} {step}: {status}{attempt}{took} ({detail})"
    if event.kind == ev.STEP_SKIPPED:
        return f"{ICONS['skipped']} {step}: {data.get('status')} ({data.get('reason')})"
    if event.kind == ev.RUN_PAUSED:
        frozen = ": its running steps are frozen" if data.get("now") else ": no further step starts"
        return f"⏸ run paused{frozen}"
    if event.kind == ev.RUN_RESUMED:
        return f"▶ run resumed after {format_duration(data.get('paused'))} paused"
    if event.kind in (ev.MESSAGE, ev.OUTPUT_TRUNCATED):
        where = f"{step}: " if step else ""
        return f"! {where}{data.get('text')}"
    return None


def format_duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, rest = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{rest:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def display_lines(event: Event, *, prefix: bool) -> list[str]:
    """How an event reads in a log: its output lines (prefixed with the step when a run has
    several, ``|`` for stdout and ``!`` for stderr, as the plain printer does), or the
    one-line account of a state change."""
    if event.kind == ev.OUTPUT:
        if not prefix:
            return list(event.lines)
        marker = "!" if event.data.get("stream") == "stderr" else "|"
        lead = f"{event.step} {marker} "
        return [lead + line for line in event.lines]
    text = describe_event(event)
    return [text] if text else []


class EndingNote:
    """What toolrun itself knows went wrong in a run, as the last line of a plain log
    (``toolrun: ...``): a tool that could not start, a timeout, a cancel, the output cap,
    a full disk, a runner that died. A tool's own failure is for the tool to say: its exit
    code goes in the status, not in a line of its output."""

    def __init__(self, *, steps: bool = False) -> None:
        self.steps = steps  # name the step in each note (a run of several)
        self.notes: list[str] = []
        self.status: str | None = None
        self.exit_code: int | None = None  # the run's
        self.tool_exit_code: int | None = None  # the last step attempt's, when it had one

    def see(self, event: Event) -> str | None:
        """Take in an event; at ``run_finished``, the last line to write (or None)."""
        data = event.data
        if event.kind == ev.STEP_FINISHED:
            self.tool_exit_code = data.get("exit_code")
            error = str(data.get("error") or "")
            # A run's own timeout is said by its message, with its length.
            if error == "run timed out":
                pass
            elif data.get("status") in ("timed_out", "worker_lost") or error.startswith(
                "cannot start"
            ):
                where = f"step {event.step}: " if self.steps and event.step else ""
                self._note(where + error)
        elif event.kind == ev.OUTPUT_TRUNCATED or (
            event.kind == ev.MESSAGE and data.get("level") == "error"
        ):
            self._note(str(data.get("text", "")))
        elif event.kind == ev.RUN_FINISHED:
            self.status = str(data.get("status", "failed"))
            code = data.get("exit_code")
            self.exit_code = code if isinstance(code, int) else None
            if self.status == "interrupted":
                why = str(data.get("error") or "the toolrun process running it ended")
                return f"toolrun: run interrupted: {'; '.join([*self.notes, why])}"
            if self.status == "cancelled" and not self.notes:
                return "toolrun: run cancelled"
            if self.notes:
                return f"toolrun: {'; '.join(self.notes)} (run {self.status})"
        return None

    def _note(self, text: str) -> None:
        if text and text not in self.notes:
            self.notes.append(text)


def shown_value(value: object) -> str:
    """A value as a toolchain or the command line writes it (true, not True; JSON for the
    rest), never a Python repr."""
    import json

    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


def counted(count: int, noun: str, plural: str | None = None) -> str:
    """``1 run``, ``2 runs``."""
    return f"{count} {noun if count == 1 else plural or noun + 's'}"
