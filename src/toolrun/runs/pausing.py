"""A run's pauses, as its clocks see them: while a run is paused its own timeout does not
run, and while its steps are frozen (``pause --now``) neither do theirs.

Pure bookkeeping on ``time.monotonic()`` readings; the drivers ask it how much of a stretch
of time was paused, and the books (steps.py) change its state.
"""

from __future__ import annotations

from ..records import field, record

GOING, PAUSED, FROZEN = 0, 1, 2  # what a run is asked to be, and is


@record
class PauseClock:
    level: int = GOING
    since: float | None = None  # when the present pause began
    paused: list[tuple[float, float | None]] = field(default_factory=list)
    frozen: list[tuple[float, float | None]] = field(default_factory=list)

    def change(self, level: int, now: float) -> None:
        if level != GOING and self.level == GOING:
            self.since = now
            self.paused.append((now, None))
        if level == FROZEN and self.level != FROZEN:
            self.frozen.append((now, None))
        if level != FROZEN and self.level == FROZEN:
            self.frozen[-1] = (self.frozen[-1][0], now)
        if level == GOING and self.level != GOING:
            self.paused[-1] = (self.paused[-1][0], now)
            self.since = None
        self.level = level

    def paused_between(self, start: float, now: float) -> float:
        """Seconds of ``[start, now]`` the run was paused: not on its own clock."""
        return _overlap(self.paused, start, now)

    def frozen_between(self, start: float, now: float) -> float:
        """Seconds of ``[start, now]`` the running steps were frozen: not on their clocks."""
        return _overlap(self.frozen, start, now)

    def left(self, limit: float, start: float, now: float, *, frozen: bool = False) -> float:
        """Seconds of ``limit`` left, counted from ``start`` without the time paused (or,
        with ``frozen``, without the time frozen)."""
        stopped = self.frozen_between(start, now) if frozen else self.paused_between(start, now)
        return limit - (now - start - stopped)


def _overlap(spans: list[tuple[float, float | None]], start: float, now: float) -> float:
    total = 0.0
    for begin, end in spans:
        total += max(0.0, min(now, end if end is not None else now) - max(start, begin))
    return total
