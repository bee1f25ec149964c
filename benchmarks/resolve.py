"""Picking a version among 10,000 of one tool: target under 20 ms each (issue 2).

Times `latest`, a range and a caret over an in-memory list of 10,000 versions (some
prereleases) with toolrun's resolver, beside the same picks made with the `semver` package
in the same run; and, end to end, listing a folder registry of 10,000 version folders.
"""

from __future__ import annotations

import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import semver
from common import machine, verdict

from toolrun.versions import parse_spec

RUNS = 15
SPECS = {"latest": "tool", "range": "tool>=1.2,<3", "caret": "tool@^2.1"}
SEMVER_CHECKS = {
    "latest": lambda v: not v.prerelease,
    "range": lambda v: not v.prerelease and v.match(">=1.2.0") and v.match("<3.0.0"),
    "caret": lambda v: not v.prerelease and v.match(">=2.1.0") and v.match("<3.0.0"),
}


def versions(count: int) -> list[str]:
    rng = random.Random(3)
    found: set[str] = set()
    while len(found) < count:
        text = f"{rng.randint(0, 4)}.{rng.randint(0, 60)}.{rng.randint(0, 60)}"
        if rng.random() < 0.1:
            text += f"-rc.{rng.randint(1, 5)}"
        found.add(text)
    return sorted(found)


def timed(action) -> float:  # type: ignore[no-untyped-def]
    samples = []
    for _ in range(RUNS):
        started = time.perf_counter()
        action()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples) * 1000


def main() -> int:
    candidates = versions(10_000)
    print(f"machine: {machine()}")
    ok = True
    for name, text in SPECS.items():
        spec = parse_spec(text)
        ours = timed(lambda spec=spec: spec.pick(candidates))
        check = SEMVER_CHECKS[name]
        reference = timed(
            lambda check=check: max(
                (v for v in map(semver.Version.parse, candidates) if check(v)), default=None
            )
        )
        expected = max((v for v in map(semver.Version.parse, candidates) if check(v)), default=None)
        assert spec.pick(candidates) == str(expected), (name, spec.pick(candidates), expected)
        ok = ok and ours < 20
        print(
            f"{name:7s} toolrun {ours:6.2f} ms  semver package {reference:7.2f} ms  "
            f"(target < 20 ms: {verdict(ours < 20)})"
        )
    with tempfile.TemporaryDirectory() as scratch:
        from toolrun.installer import Installer
        from toolrun.registry import FolderRegistry
        from toolrun.resolver import ToolResolver

        root = Path(scratch) / "registry" / "tool"
        for version in candidates:
            (root / version).mkdir(parents=True)
            (root / version / "tool.toml").write_text("")
        resolver = ToolResolver(
            Installer(Path(scratch) / "tools"), [FolderRegistry("bench", root.parent)]
        )
        listing = timed(lambda: resolver.available(["tool"]))
        print(f"listing a folder registry of 10,000 versions: {listing:6.1f} ms")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
