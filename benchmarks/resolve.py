"""Picking a version among 10,000 of one tool: target under 20 ms for each pick.

Times `latest`, a range (`>=1.2,<3`) and a caret (`^2.1`) with
`toolrun.tools.versions.parse_spec(text).pick(versions)` over an in-memory list of 10,000 SemVer
strings (about 13% prereleases) in ascending order, as registries list them; beside it, the
same picks made with the `semver` package (`semver.Version.parse` + `match`) in the same run.
The target is for the pick over the list.
Then, end to end through the library, a folder registry holding one tool with 10,000 version
folders: `ToolResolver(...).available(["tool"])` (the folder listing) followed by the pick.
Medians of 15 runs.
"""

from __future__ import annotations

import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import semver
from common import machine, verdict

from toolrun.tools.versions import parse_spec, sorted_versions

RUNS = 15
TARGET_MS = 20
SPECS = {"latest": "tool", "range >=1.2,<3": "tool>=1.2,<3", "caret ^2.1": "tool@^2.1"}
# The same rules for the semver package: prereleases only when the spec names one (none here).
SEMVER_RULES: dict[str, Callable[[semver.Version], bool]] = {
    "latest": lambda v: not v.prerelease,
    "range >=1.2,<3": lambda v: not v.prerelease and v.match(">=1.2.0") and v.match("<3.0.0"),
    "caret ^2.1": lambda v: not v.prerelease and v.match(">=2.1.0") and v.match("<3.0.0"),
}


def make_versions(count: int) -> list[str]:
    rng = random.Random(3)
    found: set[str] = set()
    while len(found) < count:
        text = f"{rng.randint(0, 4)}.{rng.randint(0, 60)}.{rng.randint(0, 60)}"
        if rng.random() < 0.1:
            text += f"-{rng.choice(['rc', 'beta', 'alpha'])}.{rng.randint(1, 5)}"
        found.add(text)
    return sorted_versions(found)  # ascending, as registries list them and pick receives them


def median_ms(action: Callable[[], object]) -> float:
    samples = []
    for _ in range(RUNS):
        started = time.perf_counter()
        action()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples) * 1000


def semver_pick(candidates: list[str], rule: Callable[[semver.Version], bool]) -> str | None:
    best = max((v for v in map(semver.Version.parse, candidates) if rule(v)), default=None)
    return None if best is None else str(best)


def main() -> int:
    from toolrun.tools.installer import Installer
    from toolrun.tools.registry import FolderRegistry
    from toolrun.tools.resolver import ToolResolver

    candidates = make_versions(10_000)
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch) / "registry"
        for version in candidates:
            (root / "tool" / version).mkdir(parents=True)
            (root / "tool" / version / "tool.toml").write_text(
                f'name = "tool"\nversion = "{version}"\n'
            )
        resolver = ToolResolver(Installer(Path(scratch) / "tools"), [FolderRegistry("bench", root)])
        listed = list(resolver.available(["tool"]).versions["tool"])
        assert listed == candidates
        listing = median_ms(lambda: resolver.available(["tool"]))
        rows = []
        for name, text in SPECS.items():
            spec = parse_spec(text)
            expected = semver_pick(candidates, SEMVER_RULES[name])
            assert spec.pick(candidates) == expected, (name, spec.pick(candidates), expected)
            ours = median_ms(lambda spec=spec: spec.pick(candidates))
            theirs = median_ms(lambda name=name: semver_pick(candidates, SEMVER_RULES[name]))
            end_to_end = median_ms(
                lambda spec=spec: spec.pick(resolver.available(["tool"]).versions["tool"])
            )
            rows.append((name, expected, ours, theirs, end_to_end))
    print(f"machine: {machine()}")
    print(f"10,000 versions, {sum('-' in v for v in candidates)} of them prereleases")
    print(f"{'spec':15s} {'picked':>8s} {'toolrun':>9s} {'semver pkg':>11s} {'registry+pick':>14s}")
    ok = True
    for name, picked, ours, theirs, end_to_end in rows:
        ok = ok and ours < TARGET_MS
        print(
            f"{name:15s} {picked:>8s} {ours:6.2f} ms {theirs:8.2f} ms {end_to_end:11.1f} ms"
            f"  (target < {TARGET_MS} ms: {verdict(ours < TARGET_MS)})"
        )
    print(f"folder listing alone, ToolResolver.available(['tool']): {listing:.1f} ms")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
