"""The order steps run in: a DAG over ``needs``, and which steps are ready now. Pure logic."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

FINISHED = ("succeeded", "failed", "skipped", "cancelled", "timed_out", "worker_lost")


def find_cycle(needs: Mapping[str, Sequence[str]]) -> list[str] | None:
    """A cycle as ``[a, b, c, a]``, or None when ``needs`` is acyclic."""
    state: dict[str, int] = {}  # 1 visiting, 2 done
    trail: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        trail.append(node)
        for need in needs.get(node, ()):
            if state.get(need) == 1:
                return [*trail[trail.index(need) :], need]
            if state.get(need) is None and need in needs:
                found = visit(need)
                if found:
                    return found
        trail.pop()
        state[node] = 2
        return None

    for node in needs:
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def ready(
    order: Sequence[str], needs: Mapping[str, Sequence[str]], states: Mapping[str, str]
) -> list[str]:
    """Pending steps whose needs have all finished, in file order."""
    return [
        step
        for step in order
        if states[step] == "pending" and all(states[n] in FINISHED for n in needs.get(step, ()))
    ]


def needs_outcome(
    step: str,
    needs: Mapping[str, Sequence[str]],
    states: Mapping[str, str],
    allowed_failures: set[str],
) -> str:
    """How the steps ``step`` needs ended: ``success``, ``failure``, ``cancelled`` or ``skipped``.

    A failure allowed by ``continue_on_error`` counts as success, and a skipped need skips its
    dependents unless their ``if`` says otherwise, both as in GitHub Actions.
    """
    outcomes = set()
    for need in needs.get(step, ()):
        state = states[need]
        if state in ("failed", "timed_out", "worker_lost") and need not in allowed_failures:
            outcomes.add("failure")
        elif state in ("cancelled", "skipped"):
            outcomes.add(state)
    for outcome in ("cancelled", "failure", "skipped"):
        if outcome in outcomes:
            return outcome
    return "success"
