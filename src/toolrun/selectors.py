"""Where a step may run: labels (``os=linux``) and selectors over them (``runs_on:``).

A selector is seed 001's: a map of label equalities (``{os: windows}``) or a list of
requirements (``- {key: gpu, operator: exists}``) with the operators ``in``, ``not_in``,
``exists``, ``not_exists``, ``gt`` and ``lt``. Workers carry labels; this machine has its own
(``os=``, ``arch=``). Pure logic: the loader gives it what the file says and reports its
problems with the file's marks; the engine asks whether a place qualifies, and why not.
"""

from __future__ import annotations

import re
import sys

from .errors import UsageError
from .records import record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

LABEL_KEY_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.\-/]{0,62}$"
LABEL_VALUE_PATTERN = r"^[^\x00-\x1f=]{0,200}$"
OPERATORS = ("in", "not_in", "exists", "not_exists", "gt", "lt")
_KEY_RE = re.compile(LABEL_KEY_PATTERN)
_VALUE_RE = re.compile(LABEL_VALUE_PATTERN)


class SelectorError(UsageError):
    """A label or selector that cannot be read; ``where`` names the part (``runs_on[1]``)."""

    def __init__(self, message: str, where: str = "") -> None:
        super().__init__(f"{where}: {message}" if where else message)
        self.where = where
        self.problem = message


class Unplaceable(UsageError):
    """No place qualifies for a step: its ``runs_on`` names labels nothing here has."""


@record(frozen=True)
class Requirement:
    key: str
    operator: str  # "eq" for the map form, else one of OPERATORS
    values: tuple[str, ...] = ()

    def matches(self, labels: dict[str, str]) -> bool:
        value = labels.get(self.key)
        if self.operator == "exists":
            return value is not None
        if self.operator == "not_exists":
            return value is None
        if self.operator == "not_in":
            return value is None or value not in self.values
        if value is None:
            return False
        if self.operator in ("eq", "in"):
            return value in self.values
        number = _number(value)
        if number is None:
            return False  # a label that is no number is neither more nor less than one
        limit = float(self.values[0])
        return number > limit if self.operator == "gt" else number < limit

    def __str__(self) -> str:
        if self.operator == "eq":
            return f"{self.key}={self.values[0]}"
        if self.operator in ("exists", "not_exists"):
            return f"{self.key} {self.operator}"
        shown = ",".join(self.values)
        return f"{self.key} {self.operator} {shown}"


@record(frozen=True)
class Selector:
    """Every requirement must hold (an empty selector: anywhere)."""

    requirements: tuple[Requirement, ...] = ()

    def matches(self, labels: dict[str, str]) -> bool:
        return all(requirement.matches(labels) for requirement in self.requirements)

    def unmet(self, labels: dict[str, str]) -> list[Requirement]:
        return [r for r in self.requirements if not r.matches(labels)]

    def __bool__(self) -> bool:
        return bool(self.requirements)

    def __str__(self) -> str:
        return ", ".join(map(str, self.requirements))


def label_text(value: object) -> str:
    """A label's value as text: YAML's true is ``true``, 8 is ``8``."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e16:
        return str(int(value))  # (beyond, a float's digits are noise: 1e300 stays 1e+300)
    return str(value)


def _number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if value == value and abs(value) != float("inf") else None


def check_key(key: object, where: str) -> str:
    if not isinstance(key, str) or not _KEY_RE.match(key):
        raise SelectorError(
            f"label {str(key)[:40]!r} must be letters, digits and . _ - / (at most 63)", where
        )
    return key


def check_value(value: object, where: str) -> str:
    if isinstance(value, list | dict) or value is None:
        raise SelectorError("a label's value is a string, number or boolean", where)
    text = label_text(value)
    if not _VALUE_RE.match(text):
        problem = (
            "is longer than 200 characters"
            if len(text) > 200
            else "holds '=' or a control character"
        )
        raise SelectorError(f"label value {text[:40]!r} {problem}", where)
    return text


def parse_label(text: str, where: str = "--label") -> tuple[str, str]:
    """``KEY=VALUE``, as ``toolrun worker --label`` and ``toolrun run --on`` take it."""
    key, equals, value = text.partition("=")
    if not equals:
        raise SelectorError(f"{text[:60]!r} is not KEY=VALUE", where)
    return check_key(key, where), check_value(value, where)


def parse_labels(texts: list[str], where: str = "--label") -> dict[str, str]:
    labels: dict[str, str] = {}
    for text in texts:
        key, value = parse_label(text, where)
        if key in labels and labels[key] != value:
            raise SelectorError(f"label {key!r} is given twice ({labels[key]}, {value})", where)
        labels[key] = value
    return labels


def selector_of_labels(labels: dict[str, str]) -> Selector:
    return Selector(tuple(Requirement(key, "eq", (value,)) for key, value in labels.items()))


def requirement(data: dict[str, Any], where: str) -> Requirement:
    """One requirement of the list form, its keys already checked by the caller."""
    key = check_key(data.get("key"), f"{where}.key")
    operator = data.get("operator")
    if operator is None:
        raise SelectorError(f"needs an operator: {', '.join(OPERATORS)}", f"{where}.operator")
    if operator not in OPERATORS:
        raise SelectorError(
            f"operator {str(operator)[:40]!r} is not one of {', '.join(OPERATORS)}",
            f"{where}.operator",
        )
    raw = data.get("values")
    if raw is not None and not isinstance(raw, list):
        raw = [raw]
    numbers = [v for v in raw or [] if isinstance(v, int | float) and not isinstance(v, bool)]
    if operator in ("gt", "lt") and (len(raw or []) != 1 or len(numbers) != 1):
        raise SelectorError(f"{operator} takes one number: values: [8]", f"{where}.values")
    values = tuple(check_value(v, f"{where}.values") for v in raw or [])
    if operator in ("exists", "not_exists") and values:
        raise SelectorError(f"{operator} takes no values", f"{where}.values")
    if operator in ("in", "not_in") and not values:
        raise SelectorError(f"{operator} needs values: [a, b]", f"{where}.values")
    return Requirement(key, str(operator), values)


def machine_labels() -> dict[str, str]:
    """This machine's own labels, which every worker adds to those it is given."""
    system = sys.platform
    os_name = "windows" if system.startswith("win") else "macos" if system == "darwin" else system
    import platform  # 2 ms, and only a run that names where it runs asks

    machine = platform.machine().lower()
    arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(machine, machine)
    return {"os": os_name, "arch": arch}
