from __future__ import annotations

import random

import pytest
import semver

from toolrun.errors import UsageError
from toolrun.tools.versions import parse_spec, sorted_versions, version_key

VERSIONS = [
    "0.1.0",
    "0.1.5",
    "0.2.0",
    "0.2.1-rc.1",
    "0.3.0",
    "1.0.0-alpha",
    "1.0.0",
    "1.2.3",
    "2.0.0",
]


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("uexp", "2.0.0"),
        ("uexp@latest", "2.0.0"),
        ("uexp==0.1.0", "0.1.0"),
        ("uexp@0.1.0", "0.1.0"),
        ("uexp@0.1", "0.1.5"),
        ("uexp@0", "0.3.0"),
        ("uexp@1", "1.2.3"),
        ("uexp>=0.1,<0.3", "0.2.0"),
        ("uexp@>=0.1,<0.3", "0.2.0"),
        ("uexp^0.1", "0.1.5"),
        ("uexp@^0.1", "0.1.5"),
        ("uexp@^1.0", "1.2.3"),
        ("uexp@~0.1.2", "0.1.5"),
        ("uexp@~1", "1.2.3"),
        ("uexp!=1.2.3", "2.0.0"),
        ("uexp>2", None),
        ("uexp==0.2.1-rc.1", "0.2.1-rc.1"),
        ("uexp@>=0.2.1-rc.1,<0.3", "0.2.1-rc.1"),
        ("uexp==0.1", "0.1.0"),
    ],
)
def test_specs_pick_the_highest_allowed_version(spec: str, expected: str | None) -> None:
    assert parse_spec(spec).pick(VERSIONS) == expected


def test_prereleases_only_when_named_or_asked_for() -> None:
    assert parse_spec("uexp@>=1.0.0-alpha").pick(["1.0.0-alpha"]) == "1.0.0-alpha"
    assert parse_spec("uexp").pick(["1.0.0-alpha", "0.9.0"]) == "0.9.0"
    assert parse_spec("uexp").pick(["1.0.0-alpha", "0.9.0"], pre=True) == "1.0.0-alpha"
    # An upper bound of 0.3 does not let 0.3.0's prereleases in, even with --pre.
    assert parse_spec("uexp@^0.2").pick(["0.3.0-rc.1", "0.2.0"], pre=True) == "0.2.0"


def test_a_version_written_apart_from_the_name() -> None:
    assert parse_spec("uexp", version="0.1").pick(VERSIONS) == "0.1.5"
    assert parse_spec("uexp", version="latest").pick(VERSIONS) == "2.0.0"
    with pytest.raises(UsageError, match="names a version and so does"):
        parse_spec("uexp@1", version="2")


@pytest.mark.parametrize(
    "bad", ["", "@1.0", "uexp@@", "uexp==abc", "uexp>=1.0,", "uexp@1.0.0.0", "ue xp", "uexp@^x"]
)
def test_malformed_specs_are_usage_errors(bad: str) -> None:
    with pytest.raises(UsageError) as info:
        parse_spec(bad)
    assert repr(bad.strip()) in str(info.value) or "malformed" in str(info.value)


def test_ordering_matches_the_semver_package() -> None:
    rng = random.Random(7)
    words = ["alpha", "beta", "rc", "1", "2", "10", "x-y", "0"]
    texts: set[str] = set()
    while len(texts) < 400:
        text = f"{rng.randint(0, 3)}.{rng.randint(0, 3)}.{rng.randint(0, 3)}"
        if rng.random() < 0.5:
            text += "-" + ".".join(rng.choice(words) for _ in range(rng.randint(1, 3)))
        texts.add(text)
    ours = sorted_versions(texts)
    reference = [str(v) for v in sorted(semver.Version.parse(t) for t in texts)]
    assert ours == reference


def test_non_semver_names_are_ignored() -> None:
    assert version_key("latest") is None
    assert sorted_versions(["1.0.0", "tmp", "1.0", "0.9.9"]) == ["0.9.9", "1.0.0"]
