from __future__ import annotations

from toolrun.toolchains.plan import find_cycle, needs_outcome, ready


def test_cycles_are_named_in_order() -> None:
    assert find_cycle({"a": [], "b": ["a", "d"], "c": ["b"], "d": ["c"]}) == ["b", "d", "c", "b"]
    assert find_cycle({"a": ["a"]}) == ["a", "a"]
    assert find_cycle({"a": [], "b": ["a"], "c": ["a", "b"]}) is None


def test_ready_steps_wait_for_their_needs() -> None:
    needs = {"a": [], "b": ["a"], "c": [], "d": ["b", "c"]}
    order = list(needs)
    states = dict.fromkeys(order, "pending")
    assert ready(order, needs, states) == ["a", "c"]
    states.update(a="succeeded", c="running")
    assert ready(order, needs, states) == ["b"]
    states.update(b="failed", c="succeeded")
    assert ready(order, needs, states) == ["d"]


def test_outcome_of_needs() -> None:
    needs = {"a": [], "b": [], "c": ["a", "b"]}
    assert needs_outcome("c", needs, {"a": "succeeded", "b": "succeeded"}, set()) == "success"
    assert needs_outcome("c", needs, {"a": "failed", "b": "succeeded"}, set()) == "failure"
    assert needs_outcome("c", needs, {"a": "failed", "b": "succeeded"}, {"a"}) == "success"
    assert needs_outcome("c", needs, {"a": "skipped", "b": "succeeded"}, set()) == "skipped"
    assert needs_outcome("c", needs, {"a": "failed", "b": "cancelled"}, set()) == "cancelled"
