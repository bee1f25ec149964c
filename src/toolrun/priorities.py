"""How soon a run starts beside others that wait: seed 001's ``priority`` label, as a number.

``high``, ``normal`` and ``low`` are 10, 0 and -10; a whole number from -1000 to 1000 says it
more finely. Higher starts first, and runs of equal priority start in the order they came: in
the daemon's queue, and on a cluster through Dask's own task priority. Pure logic: the
toolchain loader, the HTTP body and the CLI each say where a bad value was.
"""

from __future__ import annotations

from .errors import UsageError

NAMED = {"high": 10, "normal": 0, "low": -10}
LOWEST, HIGHEST = -1000, 1000


class PriorityError(UsageError):
    """A priority that is neither a name toolrun knows nor a whole number in range."""


def parse_priority(value: object, *, text: bool = False) -> int:
    """``high``, ``normal``, ``low``, or a whole number from LOWEST to HIGHEST; ``text``: a
    command line's, where a number comes as a string (``--priority 5``)."""
    if isinstance(value, str):
        if value in NAMED:
            return NAMED[value]
        written = value
        try:
            if not text:
                raise ValueError
            value = int(written)
        except ValueError:
            raise PriorityError(_wanted(f"not {written[:40]!r}")) from None
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # JSON Schema's integer: 5.0 is one
    if isinstance(value, bool) or not isinstance(value, int):
        raise PriorityError(_wanted(f"not {type(value).__name__} {value!r:.40}"))
    if not LOWEST <= value <= HIGHEST:
        raise PriorityError(_wanted(f"{value} is out of range"))
    return value


def priority_name(value: int) -> str:
    """The name a person wrote for it, where it has one."""
    for name, number in NAMED.items():
        if number == value:
            return name
    return str(value)


def _wanted(what: str) -> str:
    return (
        f"priority must be high, normal, low or a whole number from {LOWEST} to {HIGHEST}; {what}"
    )
