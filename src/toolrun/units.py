"""Quantities as people write them, each with one grammar parsed here and nowhere else:
durations (``90``, ``1h30m``, ``2.5m``, ``7d``), points in time (``2025-02-08T12:00``, or an
age: ``2h`` ago) and sizes (``100MB``).

The grammars are patterns too (``DURATION_PATTERN``, ``WHEN_PATTERN``): the OpenAPI document
and the toolchain schema quote them as they are, so a document cannot promise another one.
"""

from __future__ import annotations

import re
import time

from .errors import UsageError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

_NUMBER = r"[0-9]{1,9}(?:\.[0-9]{1,6})?"
_UNITS = {"w": 7 * 86400, "d": 86400, "h": 3600, "m": 60, "s": 1}
# Weeks to seconds, each part at most once and in that order: 1d12h, 90m, 2.5s.
_WITH_UNITS = "".join(f"(?:{_NUMBER}{unit})?" for unit in _UNITS)
DURATION_PATTERN = rf"^(?:{_NUMBER}|(?=[0-9]){_WITH_UNITS})$"
# Patterns, not compiled regexes: the config module imports this one on every command, and
# compiling all three at import took a millisecond of `toolrun exec` (re caches them on use).
_PARTS = "^" + "".join(f"(?:({_NUMBER}){unit})?" for unit in _UNITS) + "$"
MAX_DURATION = 1e15  # seconds: past any run, and past any duration the grammar can write (7e14)
DURATION_EXAMPLES = "a duration such as 30s, 10m or 1h30m"

EPOCH_PATTERN = r"[0-9]{1,11}(?:\.[0-9]{1,6})?"
_DATE = r"(?P<y>[1-9][0-9]{3})-(?P<mo>0[1-9]|1[0-2])-(?P<d>0[1-9]|[12][0-9]|3[01])"
_TIME = r"(?P<h>[01][0-9]|2[0-3]):(?P<mi>[0-5][0-9])(?::(?P<s>[0-5][0-9])(?:\.(?P<f>[0-9]{1,6}))?)?"
_ZONE = r"(?P<z>Z|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])"
DATE_PATTERN = rf"{_DATE}(?:[T ]{_TIME}{_ZONE}?)?"
# A bare number is a moment (seconds since 1970); an age needs its unit.
WHEN_PATTERN = rf"^(?:{EPOCH_PATTERN}|(?=[0-9]){_WITH_UNITS}|{DATE_PATTERN})$"
_WHOLE_EPOCH = rf"^{EPOCH_PATTERN}$"
_WHOLE_DATE = rf"^{DATE_PATTERN}$"

MAX_SIZE = 1024**6  # an exabyte: past any disk, and within SQLite's integers
_SIZE_UNITS = {"": 1, "B": 1, "K": 1024, "KB": 1024, "M": 1024**2, "MB": 1024**2}
_SIZE_UNITS.update({"G": 1024**3, "GB": 1024**3, "T": 1024**4, "TB": 1024**4})


def parse_duration(value: Any, *, zero: bool = False) -> float:
    """Seconds from ``90``, ``"90"``, ``"1h30m"``, ``"5s"``, ``"2.5m"``, ``"7d"``; ValueError
    otherwise. With ``zero``, 0 is a duration too (a caller's "no limit of my own")."""
    if isinstance(value, bool):
        raise ValueError(DURATION_EXAMPLES)
    if isinstance(value, int | float):
        try:
            seconds = float(value)
        except OverflowError:  # an integer of hundreds of digits
            raise ValueError("a duration of a finite number of seconds") from None
        return _in_range(seconds, zero)
    text = str(value).strip()
    if re.fullmatch(_NUMBER, text):
        return _in_range(float(text), zero)
    parts = _with_units(text)
    if parts is None:
        raise ValueError(DURATION_EXAMPLES)
    return _in_range(parts, zero)


def _with_units(text: str) -> float | None:
    match = re.match(_PARTS, text)
    if not text or match is None or not any(match.groups()):
        return None
    return sum(
        float(n) * size for n, size in zip(match.groups(), _UNITS.values(), strict=True) if n
    )


def _in_range(seconds: float, zero: bool) -> float:
    if seconds < 0 or (seconds == 0 and not zero):
        raise ValueError("a duration above 0")
    if not seconds <= MAX_DURATION:  # NaN too
        raise ValueError(f"a finite duration, at most {MAX_DURATION:.0e} seconds")
    return seconds


def parse_age(text: str) -> float:
    """Seconds from ``30d``, ``12h``, ``2w``, ``1d12h`` or ``90m``: a duration, read as how
    long ago."""
    try:
        return parse_duration(text)
    except ValueError:
        raise ValueError(f"{text!r} is not an age such as 30d, 12h or 2w") from None


def parse_when(text: str, option: str) -> float:
    """A point in time: seconds since the epoch, an ISO date or date and time (UTC unless it
    says), or an age (``2h``, ``7d``: that long ago). A day past its month's end rolls over
    into the next month, as the calendar would count on."""
    import calendar  # with datetime and locale: kept off the path of toolchain loading

    text = text.strip()
    if re.match(_WHOLE_EPOCH, text):
        return float(text)
    age = _with_units(text)
    if age is not None:
        return time.time() - age
    match = re.match(_WHOLE_DATE, text)
    if match is None:
        raise UsageError(
            f"{option} takes an ISO date (2025-02-08, 2025-02-08T12:00), an age (2h, 7d) or "
            f"seconds since 1970, not {text[:40]!r}",
            field=option.lstrip("-"),
        )
    year, month, day = int(match["y"]), int(match["mo"]), int(match["d"])
    seconds = float(calendar.timegm((year, month, 1, 0, 0, 0)) + (day - 1) * 86400)
    seconds += int(match["h"] or 0) * 3600 + int(match["mi"] or 0) * 60 + int(match["s"] or 0)
    seconds += int((match["f"] or "0").ljust(6, "0")) / 1e6
    zone = match["z"]
    if zone and zone != "Z":
        sign = 1 if zone[0] == "+" else -1
        seconds -= sign * (int(zone[1:3]) * 3600 + int(zone[4:6]) * 60)
    return float(seconds)


def format_size(size: int) -> str:
    """``1.5 MB``: parse_size's units, for messages."""
    for unit in ("TB", "GB", "MB", "KB"):
        if size >= _SIZE_UNITS[unit[0]]:
            return f"{size / _SIZE_UNITS[unit[0]]:.3g} {unit}"
    return f"{size} bytes"


def parse_size(text: str) -> int:
    """Bytes from ``1048576``, ``"512KB"``, ``"100MB"``, ``"5GB"`` (powers of 1024)."""
    cleaned = str(text).strip().upper().replace(" ", "").removesuffix("IB").removesuffix("I")
    number = cleaned.rstrip("BKMGT")
    unit = cleaned[len(number) :]
    try:
        value = float(number) * _SIZE_UNITS[unit]
    except (ValueError, KeyError):
        raise ValueError("a size such as 100MB, 5GB or a number of bytes") from None
    if not 0 < value <= MAX_SIZE:  # NaN and infinity too
        raise ValueError("a size above 0 and at most 1 EB")
    return int(value)
