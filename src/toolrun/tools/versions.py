"""Tool specs (``uexp==0.1.0``, ``uexp@^0.1``, ...) and picking a version among many.

The ``semver`` package is the reference for what a version is and how versions order; parsing
every candidate with it is too slow for registries with thousands of versions (about 3 us a
version here), so candidates are turned into plain tuples that order exactly as SemVer 2.0
says, and a test checks that ordering against ``semver`` itself.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Iterable

from ..errors import UsageError
from ..records import record

MAX_NAME = 100  # a name becomes a folder name; file systems stop at 255 bytes
MAX_SPEC = 200
_NAME = r"[A-Za-z0-9][A-Za-z0-9._-]*"
_NAME_RE = re.compile(_NAME)
_SPEC_RE = re.compile(rf"^(?P<name>{_NAME})(?:(?P<at>@)(?P<after_at>.*)|(?P<ops>[=<>!~^].*))?$")
_VERSION_RE = re.compile(
    r"^v?(?P<major>0|[1-9]\d*)\.(?P<minor>0|[1-9]\d*)\.(?P<patch>0|[1-9]\d*)"
    r"(?:-(?P<pre>[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?"
    r"(?:\+(?P<build>[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?$"
)
_PARTIAL_RE = re.compile(
    r"^v?(?P<major>0|[1-9]\d*)(?:\.(?P<minor>0|[1-9]\d*)(?:\.(?P<patch>0|[1-9]\d*)"
    r"(?:-(?P<pre>[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?)?)?$"
)
_COMPARATOR_RE = re.compile(r"^(?P<op>==|!=|>=|<=|>|<|=|\^|~)\s*(?P<version>\S+)$")
_N = "(?:0|[1-9][0-9]*)"
_PARTIAL = rf"v?{_N}(?:\.{_N}(?:\.{_N}(?:-[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?)?)?"
_COMPARATOR = rf"(?:==|!=|>=|<=|>|<|=|\^|~) *{_PARTIAL}"
# What a version constraint may be, as one pattern the daemon checks and its OpenAPI quotes.
CONSTRAINT_PATTERN = rf"^(?:latest|\*|{_PARTIAL}|{_COMPARATOR}(?: *, *{_COMPARATOR})*)$"
NAME_PATTERN = rf"^[A-Za-z0-9][A-Za-z0-9._-]{{0,{MAX_NAME - 1}}}$"  # is_tool_name's rule

VersionKey = tuple[int, int, int, int, tuple[tuple[int, int, str], ...]]


def version_key(text: str) -> VersionKey | None:
    """A tuple that orders like SemVer 2.0 precedence, or None if ``text`` is not SemVer."""
    if len(text) > MAX_SPEC:
        return None  # and no number too long for int() to read
    # Plain releases (most versions) skip the regular expression: resolution reads thousands.
    parts = text.split(".")
    if len(parts) == 3:
        major, minor, patch = parts
        if (
            major.isdigit()
            and minor.isdigit()
            and patch.isdigit()
            and (len(major) == 1 or major[0] != "0")
            and (len(minor) == 1 or minor[0] != "0")
            and (len(patch) == 1 or patch[0] != "0")
            and major.isascii()
            and minor.isascii()
            and patch.isascii()
        ):
            return (int(major), int(minor), int(patch), 1, ())
    match = _VERSION_RE.match(text)
    if match is None:
        return None
    pre = match["pre"]
    if pre is None:
        # A release sorts above every prerelease of the same numbers.
        return (int(match["major"]), int(match["minor"]), int(match["patch"]), 1, ())
    identifiers = tuple(
        (0, int(part), "") if part.isdigit() else (1, 0, part) for part in pre.split(".")
    )
    return (int(match["major"]), int(match["minor"]), int(match["patch"]), 0, identifiers)


def is_version(text: str) -> bool:
    return version_key(text) is not None


def is_prerelease(key: VersionKey) -> bool:
    return key[3] == 0


_TESTS = {
    "==": operator.eq,
    "!=": operator.ne,
    ">=": operator.ge,
    "<=": operator.le,
    ">": operator.gt,
    "<": operator.lt,
}


@record(frozen=True)
class Comparator:
    """One ``OP VERSION`` clause of a version constraint."""

    op: str  # one of == != >= <= > <
    key: VersionKey

    def allows(self, key: VersionKey) -> bool:
        return bool(_TESTS[self.op](key, self.key))


@record(frozen=True)
class ToolSpec:
    """What a user asked for: a tool name and which of its versions are acceptable."""

    name: str
    constraint: str  # as written, "" for latest
    comparators: tuple[Comparator, ...]
    names_prerelease: bool

    def __str__(self) -> str:
        if not self.constraint:
            return self.name
        if self.constraint[0].isdigit() or self.constraint[0] == "v":
            return f"{self.name}@{self.constraint}"
        return f"{self.name}{self.constraint}"

    @property
    def is_latest(self) -> bool:
        return not self.comparators

    @property
    def is_exact(self) -> bool:
        """One version only (``==1.2.3``, ``@1.2.3``): no registry can offer a better match."""
        return len(self.comparators) == 1 and self.comparators[0].op == "=="

    def allows(self, version: str, *, pre: bool = False) -> bool:
        key = version_key(version)
        return key is not None and self._allows_key(key, pre=pre)

    def _allows_key(self, key: VersionKey, *, pre: bool) -> bool:
        if is_prerelease(key) and not (pre or self.names_prerelease):
            return False
        return all(c.allows(key) for c in self.comparators)

    def pick(self, versions: Iterable[str], *, pre: bool = False) -> str | None:
        """The highest of ``versions`` this spec accepts, or None."""
        allow_prerelease = pre or self.names_prerelease
        tests = [(_TESTS[c.op], c.key) for c in self.comparators]
        best: str | None = None
        best_key: VersionKey | None = None
        for version in versions:
            key = version_key(version)
            if key is None or (key[3] == 0 and not allow_prerelease):
                continue
            # Only a candidate above the best so far is worth checking against the spec.
            if best_key is not None and key <= best_key:
                continue
            if all(test(key, bound) for test, bound in tests):
                best, best_key = version, key
        return best


def parse_spec(text: str, *, version: str | None = None) -> ToolSpec:
    """Parse ``name``, ``name@latest``, ``name@0.1``, ``name==0.1.0``, ``name>=0.1,<0.3`` ...

    ``version``, when given, is a constraint written apart from the name (a toolchain step's
    ``version:`` field) and must not be combined with one inside ``text``.
    """
    text = text.strip()
    longest = MAX_NAME + 1 + MAX_SPEC  # NAME@CONSTRAINT
    if len(text) > longest or (version is not None and len(str(version)) > MAX_SPEC):
        raise UsageError(f"tool spec {text[:40]!r}... is too long: at most {longest} characters")
    match = _SPEC_RE.match(text)
    if match is None:
        raise UsageError(
            f"malformed tool spec {text!r}",
            hint="write NAME, NAME@latest, NAME@1.2, NAME==1.2.3 or NAME@'>=1.0,<2'",
        )
    name = match["name"]
    if len(name) > MAX_NAME:
        raise UsageError(f"tool name {name[:40]!r}... is too long: at most {MAX_NAME} characters")
    constraint = match["after_at"].strip() if match["at"] else (match["ops"] or "").strip()
    if len(constraint) > MAX_SPEC:
        raise UsageError(f"the version in {text[:40]!r}... is over {MAX_SPEC} characters")
    if version is not None:
        if constraint:
            raise UsageError(f"{text!r} names a version and so does 'version: {version}'")
        constraint = str(version).strip()
    return ToolSpec(name, *_parse_constraint(text, constraint))


def _parse_constraint(spec_text: str, constraint: str) -> tuple[str, tuple[Comparator, ...], bool]:
    if constraint in ("", "latest", "*"):
        return "", (), False
    if _PARTIAL_RE.match(constraint):
        return constraint, _prefix(spec_text, constraint), "-" in constraint
    comparators: list[Comparator] = []
    names_prerelease = False
    for part in constraint.split(","):
        part = part.strip()
        match = _COMPARATOR_RE.match(part)
        if match is None:
            raise UsageError(
                f"malformed version constraint {part!r} in {spec_text!r}",
                hint="constraints look like ==1.2.3, >=1.0,<2, ^0.1, ~0.1.2 or a prefix like 0.1",
            )
        op, version = match["op"], match["version"]
        numbers, pre = _partial(spec_text, version)
        names_prerelease = names_prerelease or pre is not None
        comparators.extend(_expand(op, numbers, pre))
    return constraint, tuple(comparators), names_prerelease


def _partial(spec_text: str, version: str) -> tuple[list[int], str | None]:
    match = _PARTIAL_RE.match(version)
    if match is None:
        raise UsageError(
            f"{version!r} in {spec_text!r} is not a version",
            hint="versions are SemVer: MAJOR.MINOR.PATCH, optionally -PRERELEASE",
        )
    numbers = [int(n) for n in (match["major"], match["minor"], match["patch"]) if n is not None]
    return numbers, match["pre"]


def _key(numbers: list[int], pre: str | None = None) -> VersionKey:
    padded = [*numbers, 0, 0][:3]
    text = ".".join(map(str, padded)) + (f"-{pre}" if pre else "")
    key = version_key(text)
    assert key is not None
    return key


def _bump(numbers: list[int], index: int) -> VersionKey:
    """The lowest version above every version starting with ``numbers[:index + 1]``."""
    bumped = [*numbers[:index], numbers[index] + 1]
    # "-0" is the lowest prerelease, so <X.Y.0-0 also shuts out X.Y.0's prereleases.
    return _key(bumped, "0")


def _prefix(spec_text: str, constraint: str) -> tuple[Comparator, ...]:
    numbers, pre = _partial(spec_text, constraint)
    if len(numbers) == 3:
        return (Comparator("==", _key(numbers, pre)),)
    # From X.Y.0-0, the lowest prerelease: with --pre, 0.3 takes 0.3.0-rc.1 too.
    low = _key(numbers, "0")
    return (Comparator(">=", low), Comparator("<", _bump(numbers, len(numbers) - 1)))


def _expand(op: str, numbers: list[int], pre: str | None) -> list[Comparator]:
    low = _key(numbers, pre)
    if op in ("==", "="):
        return [Comparator("==", low)]
    if op in ("^", "~") and pre is None:
        low = _key(numbers, "0")  # a family's prereleases, for --pre; never without it
    if op == "^":
        # Cargo and npm: the first non-zero number given may not change.
        index = next((i for i, n in enumerate(numbers) if n != 0), len(numbers) - 1)
        return [Comparator(">=", low), Comparator("<", _bump(numbers, index))]
    if op == "~":
        index = 1 if len(numbers) >= 2 else 0
        return [Comparator(">=", low), Comparator("<", _bump(numbers, index))]
    return [Comparator(op, low)]


def sorted_versions(versions: Iterable[str]) -> list[str]:
    """SemVer strings in ascending precedence; anything else is left out."""
    keyed = [(key, v) for v in versions if (key := version_key(v)) is not None]
    keyed.sort()
    return [v for _, v in keyed]


def is_tool_name(text: str) -> bool:
    return len(text) <= MAX_NAME and _NAME_RE.fullmatch(text) is not None


def is_constraint(text: str) -> bool:
    """A version constraint as callers write one: ``0.1.0``, ``^1.2``, ``>=1,<2``, ``latest``."""
    # re compiles the pattern on first use (a millisecond a command that never asks saves)
    return len(text) <= MAX_SPEC and re.fullmatch(CONSTRAINT_PATTERN, text) is not None
