"""Durations, ages, points in time and sizes: one grammar each (units.py), and the patterns the
documents quote accept exactly what the parsers do."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from toolrun.errors import UsageError
from toolrun.units import (
    DURATION_PATTERN,
    MAX_DURATION,
    WHEN_PATTERN,
    parse_age,
    parse_duration,
    parse_size,
    parse_when,
)

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90", 90.0),
        (" 2.5m ", 150.0),
        ("1h30m", 5400.0),
        ("1d12h", 129600.0),
        ("2w", 1209600.0),
        ("1w1d1h1m1s", 694861.0),
        (45, 45.0),
        (0.5, 0.5),
    ],
)
def test_durations_in_every_unit(text: object, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    "text", ["", "soon", "1m1h", "1h1h", "5 s", "-3s", "1e3", "nan", "inf", "0x10", True, "1.5.5s"]
)
def test_what_is_not_a_duration(text: object) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


def test_zero_and_the_ceiling() -> None:
    with pytest.raises(ValueError, match="above 0"):
        parse_duration("0s")
    assert parse_duration("0", zero=True) == 0.0
    with pytest.raises(ValueError, match="at most"):
        parse_duration(MAX_DURATION * 2)
    with pytest.raises(ValueError, match="finite"):
        parse_duration(10**400)


def test_ages_are_durations_read_as_how_long_ago() -> None:
    assert parse_age("7d") == 7 * 86400
    assert parse_age("90") == 90
    with pytest.raises(ValueError, match="not an age such as 30d"):
        parse_age("last week")


def test_points_in_time() -> None:
    assert parse_when("2025-02-08", "--since") == 1738972800.0
    assert parse_when("2025-02-08T12:00+01:00", "--since") == 1738972800.0 + 11 * 3600
    assert parse_when("1738972800", "--since") == 1738972800.0  # a bare number: a moment
    assert abs(parse_when("2h", "--since") - (time.time() - 7200)) < 5
    assert parse_when("2025-02-30", "--until") == parse_when("2025-03-02", "--until")
    with pytest.raises(UsageError) as caught:
        parse_when("yesterday", "--since")
    assert caught.value.field == "since" and "'yesterday'" in caught.value.message


@pytest.mark.parametrize(
    ("text", "size"),
    [("1048576", 1048576), ("512KB", 512 * 1024), ("100MiB", 100 * 1024**2), ("5 gb", 5 * 1024**3)],
)
def test_sizes(text: str, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["", "big", "0", "-5MB", "5PB", "nan", "1e30"])
def test_what_is_not_a_size(text: str) -> None:
    with pytest.raises(ValueError):
        parse_size(text)


def _accepts(text: str) -> bool:
    try:
        parse_duration(text, zero=True)
    except ValueError:
        return False
    return True


PIECES = st.sampled_from(["1", "2.5", "10", "0", "w", "d", "h", "m", "s", ".", " ", "x", "e3"])


@given(st.lists(PIECES, max_size=7).map("".join))
def test_the_duration_pattern_accepts_what_the_parser_does(text: str) -> None:
    """The OpenAPI document and the toolchain schema quote DURATION_PATTERN: a string it lets
    through must parse, and one it refuses must not (surrounding blanks aside, which the
    parser forgives in files and the pattern does not promise)."""
    if text != text.strip():
        return
    assert bool(re.match(DURATION_PATTERN, text)) == _accepts(text), text


@given(st.lists(PIECES, max_size=7).map("".join))
def test_the_when_pattern_accepts_what_parse_when_does(text: str) -> None:
    if text != text.strip():
        return
    try:
        parse_when(text, "--since")
        parsed = True
    except UsageError:
        parsed = False
    assert bool(re.match(WHEN_PATTERN, text)) == parsed, text


def test_the_toolchain_schema_quotes_the_duration_grammar() -> None:
    schema = json.loads((REPO / "docs" / "toolchain.schema.json").read_text())
    forms = schema["$defs"]["Step"]["properties"]["timeout"]["anyOf"]
    assert schema["properties"]["timeout"]["anyOf"] == forms
    assert {"type": "string", "pattern": DURATION_PATTERN} in forms
    assert {"type": "number", "exclusiveMinimum": 0, "maximum": MAX_DURATION} in forms
