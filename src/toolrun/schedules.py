"""A schedule: when it fires (a cron expression, a macro such as ``@daily``, or ``@every 10m``)
in which time zone, with which params, and what a fire does while the schedule's last run is
still going.

Pure logic, shared: the toolchain loader and config.toml say where a bad value was, the daemon's
scheduler (automation/scheduler.py) fires them, ``toolrun schedule list`` shows the next time.
Fire times are the same in every process that computes them (``@every`` counts from the Unix
epoch, cron from the wall clock of its zone), so several daemons on one store can agree on
which fire is which and claim each once.
"""

from __future__ import annotations

import functools
import os
from datetime import datetime, tzinfo
from pathlib import Path

from .records import field, record
from .units import parse_duration

OVERLAP = ("skip", "queue", "cancel_previous")
# cronsim reads five fields; the macros are cron's own shorthands for them.
MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
MIN_EVERY = 1.0  # seconds: an interval shorter than that is a busy loop, not a schedule


class ScheduleError(ValueError):
    """A schedule value that is not one; the message says what is wanted."""


@record(frozen=True)
class When:
    """A schedule's times: a cron expression (five fields) or a fixed interval."""

    text: str  # as written
    cron: str = ""
    every: float = 0.0

    def next_after(self, moment: float, zone: tzinfo) -> float:
        """The first fire time strictly after ``moment`` (seconds since the epoch)."""
        if self.every:
            return (moment // self.every + 1) * self.every
        from cronsim import CronSim

        start = datetime.fromtimestamp(int(moment), zone)
        for fire in CronSim(self.cron, start):
            if fire.timestamp() > moment:
                return fire.timestamp()
        raise AssertionError("cronsim's iterator does not end")  # pragma: no cover

    def last_at_or_before(self, moment: float, zone: tzinfo, since: float) -> float | None:
        """The latest fire time in ``(since, moment]``, or None: what a daemon that was not
        watching missed (it fires that one only, never each one it missed)."""
        if self.every:
            last = moment // self.every * self.every
            return last if since < last <= moment else None
        from cronsim import CronSim

        found = None
        for fire in CronSim(self.cron, datetime.fromtimestamp(int(since), zone)):
            at = fire.timestamp()
            if at > moment:
                return found
            if at > since:
                found = at
        raise AssertionError("cronsim's iterator does not end")  # pragma: no cover


def parse_when(value: object) -> When:
    """``"0 3 * * *"``, ``"@daily"``, ``"@every 10m"``; ScheduleError otherwise."""
    if not isinstance(value, str) or not value.strip():
        raise ScheduleError('a cron expression such as "0 3 * * *", @daily or "@every 10m"')
    text = " ".join(value.split())
    if text.startswith("@every"):
        interval = text[len("@every") :].strip()
        try:
            seconds = parse_duration(interval)
        except ValueError as exc:
            raise ScheduleError(f"@every needs {exc}, not {interval!r}") from None
        if seconds < MIN_EVERY:
            raise ScheduleError(f"@every {interval} is shorter than {MIN_EVERY:g} second")
        return When(text, every=seconds)
    if text.startswith("@"):
        cron = MACROS.get(text.lower())
        if cron is None:
            raise ScheduleError(
                f"unknown macro {text!r} (known: {', '.join(MACROS)}, and @every DURATION)"
            )
        return When(text, cron=cron)
    from cronsim import CronSim, CronSimError

    fields = text.split()
    if len(fields) != 5:
        raise ScheduleError(
            f"a cron expression has 5 fields (minute hour day month weekday), {text!r} has "
            f"{len(fields)}"
        )
    try:
        CronSim(text, datetime(2000, 1, 1))
    except CronSimError as exc:
        raise ScheduleError(f"{text!r} is not a valid cron expression: {exc}") from None
    return When(text, cron=text)


def parse_zone(value: object) -> tzinfo:
    """An IANA time zone name (``Asia/Shanghai``); ScheduleError otherwise."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    if not isinstance(value, str) or not value:
        raise ScheduleError("an IANA time zone name such as Asia/Shanghai or UTC")
    try:
        return ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ScheduleError(
            f"unknown time zone {value[:60]!r} (an IANA name such as Asia/Shanghai or UTC)"
        ) from None


@functools.cache
def local_zone() -> tzinfo:
    """The machine's own time zone, with its daylight-saving rules (not only today's offset):
    TZ when it names a zone, else the zone /etc/localtime is, else today's fixed offset."""
    from zoneinfo import ZoneInfo

    named = os.environ.get("TZ", "").removeprefix(":")
    if named:
        try:
            return parse_zone(named)
        except ScheduleError:
            pass
    localtime = Path("/etc/localtime")
    try:
        with localtime.open("rb") as file:
            return ZoneInfo.from_file(file, key=_zone_key(localtime))
    except (OSError, ValueError):
        # Windows has no tz database file; its zone's offset today is the best at hand.
        zone = datetime.now().astimezone().tzinfo
        assert zone is not None
        return zone


def _zone_key(localtime: Path) -> str:
    """``Europe/Berlin`` from /etc/localtime -> /usr/share/zoneinfo/Europe/Berlin."""
    try:
        target = str(localtime.resolve())
    except OSError:
        return "localtime"
    _, marker, key = target.partition("zoneinfo/")
    return key if marker else "localtime"


@record(frozen=True)
class Schedule:
    """A schedule of a toolchain, from its file or from config.toml."""

    name: str
    toolchain: str
    when: When
    timezone: str = ""  # an IANA name; "" is the daemon's own zone
    params: dict[str, str] = field(default_factory=dict)
    overlap: str = "skip"  # skip | queue | cancel_previous
    catch_up: float = 0.0  # seconds: after downtime, fire once for a time missed this recently
    source: str = ""  # where it was written: file:line:col, or config.toml's table

    def zone(self) -> tzinfo:
        return parse_zone(self.timezone) if self.timezone else local_zone()

    def next_after(self, moment: float) -> float:
        return self.when.next_after(moment, self.zone())
