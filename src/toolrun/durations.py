"""Points in time and ages as people write them: ``2025-02-08T12:00``, ``2h``, ``7d``.

One grammar, as one pattern (``WHEN_PATTERN``): the CLI's ``--since``/``--until`` and the
daemon's ``since``/``until`` read it, and the OpenAPI document quotes it.
"""

from __future__ import annotations

import calendar
import re
import time

from .errors import UsageError
from .toolchains.model import parse_duration

_AGE_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_PART = r"[0-9]{1,9}(?:\.[0-9]{1,6})?"
AGE_PATTERN = rf"(?=[0-9])(?:{_PART}w)?(?:{_PART}d)?(?:{_PART}h)?(?:{_PART}m)?(?:{_PART}s)?"
EPOCH_PATTERN = r"[0-9]{1,11}(?:\.[0-9]{1,6})?"
_DATE = r"(?P<y>[1-9][0-9]{3})-(?P<mo>0[1-9]|1[0-2])-(?P<d>0[1-9]|[12][0-9]|3[01])"
_TIME = r"(?P<h>[01][0-9]|2[0-3]):(?P<mi>[0-5][0-9])(?::(?P<s>[0-5][0-9])(?:\.(?P<f>[0-9]{1,6}))?)?"
_ZONE = r"(?P<z>Z|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])"
DATE_PATTERN = rf"{_DATE}(?:[T ]{_TIME}{_ZONE}?)?"
WHEN_PATTERN = rf"^(?:{EPOCH_PATTERN}|{AGE_PATTERN}|{DATE_PATTERN})$"
_AGE_RE = re.compile(rf"^{AGE_PATTERN}$")
_EPOCH_RE = re.compile(rf"^{EPOCH_PATTERN}$")
_DATE_RE = re.compile(rf"^{DATE_PATTERN}$")


def parse_age(text: str) -> float:
    """Seconds from ``30d``, ``12h``, ``2w``, ``1d12h`` or a duration like ``90m``."""
    stripped = text.strip()
    if stripped and _AGE_RE.match(stripped) and not stripped[-1].isdigit():
        return _age_seconds(stripped)
    try:
        return parse_duration(text)
    except ValueError:
        raise ValueError(f"{text!r} is not an age such as 30d, 12h or 2w") from None


def _age_seconds(text: str) -> float:
    return sum(
        float(number) * _AGE_UNITS[unit] for number, unit in re.findall(r"([0-9.]+)([wdhms])", text)
    )


def parse_when(text: str, option: str) -> float:
    """A point in time: seconds since the epoch, an ISO date or date and time (UTC unless it
    says), or an age (``2h``, ``7d``: that long ago). A day past its month's end rolls over
    into the next month, as the calendar would count on."""
    text = text.strip()
    if _EPOCH_RE.match(text):
        return float(text)
    if _AGE_RE.match(text):
        return time.time() - _age_seconds(text)
    match = _DATE_RE.match(text)
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
