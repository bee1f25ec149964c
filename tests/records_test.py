"""``@record`` does what toolrun needed of dataclasses, and the fast sha256 is hashlib's."""

from __future__ import annotations

import hashlib

import pytest

from toolrun.digests import sha256_hex
from toolrun.records import FrozenRecordError, field, record, replace


@record(frozen=True)
class Point:
    """A frozen record with a default and a factory."""

    x: int
    y: int = 0
    tags: list[str] = field(default_factory=list)


@record
class Counter:
    """A mutable record with a method of its own."""

    name: str
    count: int = 0

    def __repr__(self) -> str:
        return f"<{self.name}: {self.count}>"


def test_fields_by_position_and_by_name_with_defaults() -> None:
    assert Point(1).x == 1 and Point(1).y == 0 and Point(1).tags == []
    assert Point(1, 2, ["a"]) == Point(x=1, tags=["a"], y=2)
    assert Point(1).tags is not Point(1).tags  # a new list for each record
    assert repr(Point(1, 2)) == "Point(x=1, y=2, tags=[])"
    assert Point.y == 0 and not hasattr(Point, "tags")  # as dataclasses leave them


def test_bad_calls_are_type_errors_naming_the_argument() -> None:
    # Each call is wrong on purpose (the error under test), so mypy is told to let it be.
    with pytest.raises(TypeError, match="'x'"):
        Point()  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="'z'"):
        Point(1, z=2)  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="'x'"):
        Point(1, x=2)  # type: ignore[misc]
    with pytest.raises(TypeError, match="3 arguments"):
        Point(1, 2, [], 4)  # type: ignore[call-arg]


def test_frozen_records_refuse_changes_and_hash_by_value() -> None:
    point = Point(1, 2)
    with pytest.raises(FrozenRecordError, match="'x'"):
        point.x = 3  # type: ignore[misc]  # the change under test: mypy sees it is frozen
    with pytest.raises(AttributeError):
        del point.y
    # A tuple for the list[str] field: only a record of hashable values can be hashed.
    assert hash(Point(1, 2, ())) == hash(Point(1, 2, ()))  # type: ignore[arg-type]
    assert len({Point(1, 2, ()), Point(1, 2, ())}) == 1  # type: ignore[arg-type]


def test_mutable_records_keep_their_own_methods_and_are_not_hashable() -> None:
    counter = Counter("runs")
    counter.count += 1
    assert repr(counter) == "<runs: 1>" and counter == Counter("runs", 1)
    other: object = ("runs", 1)  # not a Counter: mypy's strict equality would refuse it
    assert counter != Counter("runs", 2) and counter != other
    with pytest.raises(TypeError):
        hash(counter)


def test_replace_copies_with_changes() -> None:
    point = Point(1, 2, ["a"])
    assert replace(point, y=5) == Point(1, 5, ["a"]) and point.y == 2
    with pytest.raises(TypeError, match="'z'"):
        replace(point, z=1)


def test_post_init_runs_after_the_fields_are_set() -> None:
    @record
    class Span:
        start: int
        end: int

        def __post_init__(self) -> None:
            if self.end < self.start:
                raise ValueError("end before start")

    assert Span(1, 2).end == 2
    with pytest.raises(ValueError, match="end before start"):
        Span(2, 1)


def test_definition_mistakes_are_caught_when_the_class_is_made() -> None:
    with pytest.raises(TypeError, match="without a default"):

        @record
        class Late:
            a: int = 0
            b: int  # type: ignore[misc]  # the mistake under test

    with pytest.raises(ValueError, match="default_factory"):

        @record
        class Shared:
            items: list[int] = []  # noqa: RUF012


@pytest.mark.parametrize("data", [b"", b"toolrun", "é".encode() * 1000])
def test_sha256_hex_is_hashlibs(data: bytes) -> None:
    assert sha256_hex(data) == hashlib.sha256(data).hexdigest()
