"""Points in time and ages as people write them: ``2025-02-08T12:00``, ``2h``, ``7d``."""

from __future__ import annotations

import calendar
import re
import time

from .errors import UsageError
from .toolchain import parse_duration


def parse_age(text: str) -> float:
    """Seconds from ``30d``, ``12h``, ``2w`` or a duration like ``90m``."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([dw])\s*", text)
    if match:
        return float(match[1]) * (86400 if match[2] == "d" else 7 * 86400)
    try:
        return parse_duration(text)
    except ValueError:
        raise ValueError(f"{text!r} is not an age such as 30d, 12h or 2w") from None


def parse_when(text: str, option: str) -> float:
    """A point in time: an ISO date/time (UTC unless it says), or an age such as ``2h``."""
    from datetime import datetime

    try:
        return time.time() - parse_age(text)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise UsageError(
            f"{option} takes an ISO date (2025-02-08, 2025-02-08T12:00) or an age (2h, 7d)"
        ) from None
    if moment.tzinfo is None:
        return float(calendar.timegm(moment.timetuple())) + moment.microsecond / 1e6
    return moment.timestamp()
