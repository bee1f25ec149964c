"""What a toolchain's steps name must exist: the steps they need, the names their expressions
read, the functions their conditions call; and needs must not form a cycle. The loader calls
this once every step is read, with where each step was written."""

from __future__ import annotations

import difflib
from collections.abc import Callable
from typing import Any

from .expressions import STATUS_FUNCTIONS, calls, paths
from .model import Step, Toolchain
from .plan import find_cycle

Problem = Callable[[Any, str], None]  # (the node or None, the message): the loader's
ROOTS = ("params", "env", "steps", "platform", "toolchain", "run")
FUNCTIONS = frozenset({*STATUS_FUNCTIONS, "contains", "startsWith", "endsWith"})
STEP_FIELDS = ("outputs", "outcome", "exit_code")


def check_references(toolchain: Toolchain, step_nodes: dict[str, Any], problem: Problem) -> None:
    ids = [step.id for step in toolchain.steps]
    known = set(ids)  # a list made this quadratic: 12,000 steps took 3 s here
    for step in toolchain.steps:
        mark = step_nodes.get(step.id)
        for need in step.needs:
            if need not in known:
                close = difflib.get_close_matches(need, ids, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                problem(mark, f"step {step.id!r}: needs unknown step {need!r}{hint}")
        templates = [*step.args, *step.env.values()]
        for override in step.by_platform.values():
            templates.extend(override.args or ())
            templates.extend((override.env or {}).values())
        if step.condition is not None:
            templates.append(step.condition)
        for template in templates:
            for expression in template.nodes():
                for path in paths(expression):
                    _check_path(path, step, toolchain, known, mark, problem)
        if step.condition is None:
            continue
        for expression in step.condition.nodes():
            unknown = calls(expression) - FUNCTIONS
            if unknown:
                problem(mark, f"step {step.id!r}: unknown function {sorted(unknown)[0]}")
    for template in toolchain.env.values():
        for expression in template.nodes():
            for path in paths(expression):
                if path[0] == "steps":
                    problem(None, "toolchain env cannot read steps.*: it is set before any step")
                elif path[0] == "params" and len(path) > 1 and path[1] not in toolchain.params:
                    problem(None, f"env: unknown parameter {path[1]!r}")
    cycle = find_cycle(
        {step.id: step.needs for step in toolchain.steps if all(n in known for n in step.needs)}
    )
    if cycle:
        problem(step_nodes.get(cycle[0]), "needs form a cycle: " + " -> ".join(cycle))


def _check_path(
    path: tuple[str, ...],
    step: Step,
    toolchain: Toolchain,
    ids: set[str],
    mark: Any,
    problem: Problem,
) -> None:
    where = f"step {step.id!r}"
    root = path[0]
    if root not in ROOTS:
        problem(
            mark, f"{where}: unknown name {root!r} in an expression (known: {', '.join(ROOTS)})"
        )
    elif root == "params" and len(path) > 1 and path[1] not in toolchain.params:
        close = difflib.get_close_matches(path[1], list(toolchain.params), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        problem(mark, f"{where}: unknown parameter {path[1]!r}{hint}")
    elif root == "steps" and len(path) > 1:
        if path[1] not in ids:
            problem(mark, f"{where}: expression reads unknown step {path[1]!r}")
        elif len(path) > 2 and path[2] not in STEP_FIELDS:
            problem(mark, f"{where}: steps.{path[1]} has outputs, outcome and exit_code")
