"""Reading a toolchain's YAML: composed nodes keep their line marks, so every problem is
reported as file:line:col, all of them at once.

It stays one module over 400 lines because it is one walk over the file's nodes, each key's
rule beside the message it gives; the keys come from document.py (written out in keys.py),
what steps name is checked by references.py."""

from __future__ import annotations

import difflib
import re
from pathlib import Path
from typing import Any

import yaml

from ..errors import UsageError
from ..policy import ENV_NAME_PATTERN, env_pattern_problem
from ..priorities import PriorityError, parse_priority
from ..records import replace
from ..schedules import OVERLAP, Schedule, ScheduleError, parse_when, parse_zone
from ..selectors import (
    Requirement,
    Selector,
    SelectorError,
    check_key,
    check_value,
    requirement,
)
from ..tools.versions import is_tool_name, parse_spec
from ..units import parse_duration
from . import keys
from .expressions import ExpressionError, Template, parse_condition, parse_template
from .keys import MAX_BACKOFF, MAX_RETRIES, PARAM_NAME_PATTERN, STEP_ID_PATTERN
from .model import (
    PARAM_TYPES,
    ParamSpec,
    PlatformStep,
    RetryPolicy,
    Step,
    Toolchain,
    ToolchainError,
    convert_param,
    scalar_text,
    type_of,
)
from .references import check_references

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
# The keys each mapping may hold are the shapes' fields (document.py, which the schema is made
# of), written out in keys.py.
_TOP_KEYS = keys.TOOLCHAIN
_STEP_KEYS = keys.STEP
_PARAM_KEYS = keys.PARAM
_RETRY_KEYS = keys.RETRIES
_PLATFORM_KEYS = keys.PLATFORM
_SCHEDULE_KEYS = keys.SCHEDULE
_PLATFORMS = keys.BY_PLATFORM
_REQUIREMENT_KEYS = keys.REQUIREMENT
_STEP_ID_RE = re.compile(STEP_ID_PATTERN)
_SCHEDULE_NAME_RE = re.compile(keys.SCHEDULE_NAME_PATTERN)
_PARAM_NAME_RE = re.compile(PARAM_NAME_PATTERN)
_ENV_NAME_RE = re.compile(ENV_NAME_PATTERN)


MAX_NODES = 100_000  # values a toolchain expands to, its aliases followed: thousands of steps


def alias_bomb(root: yaml.Node) -> yaml.Node | None:
    """The first node whose expansion passes MAX_NODES, aliases followed (an alias is the
    very node it names, so a few lines can name a billion values), or None."""
    sizes: dict[int, int] = {}
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        if id(node) in sizes:
            continue
        children = (
            [item for pair in node.value for item in pair]
            if isinstance(node, yaml.MappingNode)
            else list(node.value)
            if isinstance(node, yaml.SequenceNode)
            else []
        )
        if not children_done:
            stack.append((node, True))
            stack.extend((child, False) for child in children if id(child) not in sizes)
            continue
        size = 1 + sum(sizes.get(id(child), 0) for child in children)
        if size > MAX_NODES:
            return node
        sizes[id(node)] = size
    return None


def parse_toolchain_text(
    text: str, *, name: str, source: str, path: Path | None = None
) -> Toolchain:
    try:
        node = yaml.compose(text, Loader=_Loader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark else source
        raise ToolchainError(f"{where}: malformed YAML: {exc.problem or exc.context}") from None
    except yaml.YAMLError as exc:
        raise ToolchainError(f"{source}: malformed YAML: {exc}") from None
    except RecursionError:
        raise ToolchainError(f"{source}: the YAML nests too deeply") from None
    if node is not None:
        bomb = alias_bomb(node)
        if bomb is not None:
            mark = bomb.start_mark
            raise ToolchainError(
                f"{source}:{mark.line + 1}:{mark.column + 1}: its aliases expand to more than "
                f"{MAX_NODES:,} values (a YAML bomb?); anchors are for repeating a few lines"
            )
    checker = _Checker(source)
    toolchain = checker.toolchain(node, text=text, name=name, path=path)
    if checker.problems:
        raise ToolchainError("\n".join(checker.problems))
    assert toolchain is not None
    return replace(toolchain, warnings=tuple(checker.warnings)) if checker.warnings else toolchain


class _Checker:
    """Turns composed YAML nodes into a Toolchain, collecting problems with their marks."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.problems: list[str] = []
        self.warnings: list[str] = []
        self.constructor = yaml.constructor.SafeConstructor()

    def problem(self, node: yaml.Node | None, message: str) -> None:
        if node is None:
            self.problems.append(f"{self.source}: {message}")
            return
        mark = node.start_mark
        self.problems.append(f"{self.source}:{mark.line + 1}:{mark.column + 1}: {message}")

    def warning(self, node: yaml.Node, message: str) -> None:
        mark = node.start_mark
        self.warnings.append(f"{self.source}:{mark.line + 1}:{mark.column + 1}: {message}")

    def value(self, node: yaml.Node) -> Any:
        try:
            return self.constructor.construct_object(node, deep=True)
        except yaml.YAMLError as exc:  # a merge key (<<), a tag no toolchain has a use for
            problem = getattr(exc, "problem", None) or str(exc)
            self.problem(node, f"cannot read this value: {problem}")
            return None

    def mapping(self, node: yaml.Node, where: str, known: tuple[str, ...]) -> dict[str, Any]:
        """A mapping's items as key -> (key node, value node), with unknown keys reported."""
        if not isinstance(node, yaml.MappingNode):
            self.problem(node, f"{where} must be a mapping")
            return {}
        items: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key = str(self.value(key_node))
            if key in items:
                self.problem(key_node, f"{where}: {key!r} appears twice")
            if known and key not in known:
                close = difflib.get_close_matches(key, known, n=1)
                suggestion = f" (did you mean {close[0]!r}?)" if close else ""
                self.problem(key_node, f"{where}: unknown key {key!r}{suggestion}")
                continue
            items[key] = (key_node, value_node)
        return items

    def toolchain(
        self, node: yaml.Node | None, *, text: str, name: str, path: Path | None
    ) -> Toolchain | None:
        if node is None:
            self.problem(None, "the file is empty; a toolchain needs a 'toolchain:' list of steps")
            return None
        top = self.mapping(node, "the toolchain", _TOP_KEYS)
        description = self.string(top.get("description"), "description") or ""
        params = self.params(top.get("params"))
        env = self.env(top.get("env"), "env")
        timeout = self.duration(top.get("timeout"), "timeout")
        max_parallel = 4
        if "max_parallel" in top:
            value_node = top["max_parallel"][1]
            value = self.value(value_node)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                self.problem(value_node, "max_parallel must be a whole number of 1 or more")
            else:
                max_parallel = value
        accept_env = self.env_patterns(top.get("accept_env"), "accept_env")
        pass_env = self.env_patterns(top.get("pass_env"), "pass_env")
        runs_on = self.selector(top.get("runs_on"), "runs_on")
        priority = 0
        if "priority" in top:
            value_node = top["priority"][1]
            try:
                priority = parse_priority(self.value(value_node))
            except PriorityError as exc:
                self.problem(value_node, exc.message)
        if "toolchain" not in top:
            self.problem(node, "missing 'toolchain:', the list of steps")
            return None
        steps = self.steps(top["toolchain"][1])
        schedules = self.schedules(top.get("schedule"), name)
        toolchain = Toolchain(
            name=name,
            text=text,
            steps=tuple(steps),
            path=path,
            description=description,
            params=params,
            env=env,
            timeout=timeout,
            max_parallel=max_parallel,
            accept_env=accept_env,
            pass_env=pass_env,
            runs_on=runs_on,
            priority=priority,
            schedules=schedules,
        )
        self.check_schedule_params(toolchain, top.get("schedule"))
        step_nodes = {
            str(self.value(entry.value[0][0])): entry.value[0][0]
            for entry in top["toolchain"][1].value
            if isinstance(entry, yaml.MappingNode) and len(entry.value) == 1
        }
        check_references(toolchain, step_nodes, self.problem)
        return toolchain

    def schedules(
        self, item: tuple[yaml.Node, yaml.Node] | None, toolchain: str
    ) -> tuple[Schedule, ...]:
        """``schedule:``: a cron string, a mapping, or a list of either."""
        if item is None:
            return ()
        node = item[1]
        entries = node.value if isinstance(node, yaml.SequenceNode) else [node]
        found: list[Schedule] = []
        names: set[str] = set()
        for index, entry in enumerate(entries):
            where = "schedule" if entries is not node.value else f"schedule[{index}]"
            schedule = self.schedule(entry, where, toolchain, index)
            if schedule is None:
                continue
            if schedule.name in names:
                self.problem(entry, f"{where}: a second schedule named {schedule.name!r}")
                continue
            names.add(schedule.name)
            found.append(schedule)
        return tuple(found)

    def schedule(self, node: yaml.Node, where: str, toolchain: str, index: int) -> Schedule | None:
        mark = node.start_mark
        source = f"{self.source}:{mark.line + 1}:{mark.column + 1}"
        name = toolchain if index == 0 else f"{toolchain}.{index + 1}"
        if isinstance(node, yaml.ScalarNode):
            try:
                return Schedule(name, toolchain, parse_when(self.value(node)), source=source)
            except ScheduleError as exc:
                self.problem(node, f"{where}: {exc}")
                return None
        items = self.mapping(node, where, _SCHEDULE_KEYS)
        if not items:
            return None
        if "cron" not in items:
            self.problem(node, f'{where}: missing \'cron:\' ("0 3 * * *", @daily, "@every 10m")')
            return None
        ok = True
        try:
            when = parse_when(self.value(items["cron"][1]))
        except ScheduleError as exc:
            self.problem(items["cron"][1], f"{where}.cron: {exc}")
            ok = False
        if "name" in items:
            given = self.value(items["name"][1])
            if not isinstance(given, str) or not _SCHEDULE_NAME_RE.match(given):
                self.problem(
                    items["name"][1], f"{where}.name may hold letters, digits, '.', '_', '-'"
                )
                ok = False
            else:
                name = f"{toolchain}.{given}"
        zone = self.string(items.get("timezone"), f"{where}.timezone") or ""
        if zone:
            try:
                parse_zone(zone)
            except ScheduleError as exc:
                self.problem(items["timezone"][1], f"{where}.timezone: {exc}")
                ok = False
        overlap = self.string(items.get("overlap"), f"{where}.overlap") or "skip"
        if overlap not in OVERLAP:
            self.problem(items["overlap"][1], f"{where}.overlap must be {', '.join(OVERLAP)}")
            ok = False
        catch_up = self.duration(items.get("catch_up"), f"{where}.catch_up") or 0.0
        params: dict[str, Any] = {}
        if "params" in items:
            raw = self.mapping(items["params"][1], f"{where}.params", ())
            for key, (_, value_node) in raw.items():
                value = self.value(value_node)
                if isinstance(value, list | dict) or value is None:
                    self.problem(value_node, f"{where}.params.{key} must be a scalar")
                    ok = False
                params[key] = value
        if not ok:
            return None
        return Schedule(name, toolchain, when, zone, params, overlap, catch_up, source)

    def check_schedule_params(
        self, toolchain: Toolchain, item: tuple[yaml.Node, yaml.Node] | None
    ) -> None:
        """Each schedule's params bind as a run's would: a fire never fails on them."""
        from .model import bind_params

        if item is None:
            return
        node = item[1]
        entries = node.value if isinstance(node, yaml.SequenceNode) else [node]
        if len(entries) != len(toolchain.schedules):
            return  # a schedule was refused already
        for schedule, entry in zip(toolchain.schedules, entries, strict=True):
            try:
                bind_params(toolchain, schedule.params)
            except UsageError as exc:
                first = exc.message.splitlines()[0]
                self.problem(entry, f"schedule {schedule.name!r}: {first}")

    def env_patterns(self, item: tuple[yaml.Node, yaml.Node] | None, key: str) -> tuple[str, ...]:
        """``accept_env`` (the env names remote callers may set) and ``pass_env`` (the names
        of the caller's own env a local run passes on): NAME or PREFIX_*."""
        if item is None:
            return ()
        node = item[1]
        if not isinstance(node, yaml.SequenceNode):
            self.problem(node, f"{key} must be a list of names: [NAME, PREFIX_*]")
            return ()
        patterns = []
        for entry in node.value:
            value = self.value(entry)
            why = env_pattern_problem(value) if isinstance(value, str) else "not a string"
            if why:
                self.problem(entry, f"{key}: {why}")
            else:
                patterns.append(value)
        return tuple(patterns)

    def selector(self, item: tuple[yaml.Node, yaml.Node] | None, where: str) -> Selector:
        """``runs_on``: a map of label equalities, or a list of requirements."""
        if item is None:
            return Selector()
        node = item[1]
        found: list[Requirement] = []
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                try:
                    key = check_key(self.value(key_node), where)
                except SelectorError as exc:
                    self.problem(key_node, str(exc))
                    continue
                try:
                    value = check_value(self.value(value_node), f"{where}.{key}")
                except SelectorError as exc:
                    self.problem(value_node, str(exc))
                    continue
                found.append(Requirement(key, "eq", (value,)))
        elif isinstance(node, yaml.SequenceNode):
            for index, entry in enumerate(node.value):
                at = f"{where}[{index}]"
                items = self.mapping(entry, at, _REQUIREMENT_KEYS)
                raw = {key: self.value(pair[1]) for key, pair in items.items()}
                try:
                    found.append(requirement(raw, at))
                except SelectorError as exc:
                    part = exc.where.rpartition(".")[2]
                    self.problem(items.get(part, (entry, entry))[1], str(exc))
        else:
            self.problem(
                node,
                f"{where} must be a map of labels ({{os: windows}}) or a list of "
                "requirements (- {key: gpu, operator: exists})",
            )
        return Selector(tuple(found))

    def string(self, item: tuple[yaml.Node, yaml.Node] | None, where: str) -> str | None:
        if item is None:
            return None
        value = self.value(item[1])
        if not isinstance(value, str):
            self.problem(item[1], f"{where} must be a string")
            return None
        return value

    def duration(self, item: tuple[yaml.Node, yaml.Node] | None, where: str) -> float | None:
        if item is None:
            return None
        try:
            return parse_duration(self.value(item[1]))
        except ValueError as exc:
            self.problem(item[1], f"{where} must be {exc}")
            return None

    def template(self, node: yaml.Node, where: str) -> Template | None:
        value = self.value(node)
        if isinstance(value, list | dict) or value is None:
            self.problem(node, f"{where} must be a string, number or boolean")
            return None
        text = value if isinstance(value, str) else scalar_text(value)
        escaped = [ch for ch in text if ch < " " or ch == "\x7f"]
        if escaped and isinstance(node, yaml.ScalarNode) and node.style == '"':
            # "d:\exp" in double quotes is d, :, ESC, x, p: YAML read \e as an escape.
            shown = ", ".join(sorted({repr(ch) for ch in escaped}))
            self.warning(
                node,
                f"{where} holds a control character ({shown}) that a backslash made in double "
                "quotes; write Windows paths in single quotes ('d:\\exp') or with /",
            )
        try:
            return parse_template(text)
        except ExpressionError as exc:
            self.problem(
                node, f"{where}: bad expression: {exc.message} (at character {exc.column + 1})"
            )
            return None

    def env(self, item: tuple[yaml.Node, yaml.Node] | None, where: str) -> dict[str, Template]:
        """A map, or the seed's list of single-key maps (``- foo: bar``)."""
        if item is None:
            return {}
        node = item[1]
        pairs: list[tuple[yaml.Node, yaml.Node]] = []
        if isinstance(node, yaml.MappingNode):
            pairs = list(node.value)
        elif isinstance(node, yaml.SequenceNode):
            for entry in node.value:
                if isinstance(entry, yaml.MappingNode):
                    pairs.extend(entry.value)
                else:
                    self.problem(entry, f"{where}: each item must be a 'NAME: value' mapping")
        elif isinstance(node, yaml.ScalarNode) and self.value(node) is not None:
            text = str(self.value(node))
            suggestion = text.lstrip("-").strip().replace(":", ": ", 1)
            self.problem(
                node,
                f"{where} must be a mapping of NAME: value or a list of them; it reads as the "
                f"text {text[:60]!r}. For a list item, put a space after the dash: "
                f"'- {suggestion}'",
            )
        elif not isinstance(node, yaml.ScalarNode):
            self.problem(node, f"{where} must be a mapping of NAME: value")
        env: dict[str, Template] = {}
        for key_node, value_node in pairs:
            key = str(self.value(key_node))
            if not _ENV_NAME_RE.match(key):
                self.problem(key_node, f"{where}: {key!r} is not a valid variable name")
                continue
            template = self.template(value_node, f"{where}.{key}")
            if template is not None:
                env[key] = template
        return env

    def params(self, item: tuple[yaml.Node, yaml.Node] | None) -> dict[str, ParamSpec]:
        if item is None:
            return {}
        params: dict[str, ParamSpec] = {}
        for name, (key_node, value_node) in self.mapping(item[1], "params", ()).items():
            where = f"params.{name}"
            if not _PARAM_NAME_RE.match(name):
                self.problem(key_node, f"{where}: not a valid parameter name")
                continue
            if not isinstance(value_node, yaml.MappingNode):
                default = self.value(value_node)
                if isinstance(default, list | dict):
                    self.problem(value_node, f"{where}: a default must be a scalar")
                    continue
                if isinstance(default, float) and not abs(default) < float("inf"):
                    self.problem(value_node, f"{where}: a default must be a finite number")
                    continue
                params[name] = ParamSpec(name, type_of(default), default, default is None)
                continue
            raw = {
                k: self.value(v[1]) for k, v in self.mapping(value_node, where, _PARAM_KEYS).items()
            }
            type_ = raw.get("type", type_of(raw.get("default")))
            if type_ not in PARAM_TYPES:
                self.problem(value_node, f"{where}.type must be one of {', '.join(PARAM_TYPES)}")
                continue
            default = raw.get("default")
            if default is not None:
                try:
                    default = convert_param(ParamSpec(name, type_), default)
                except UsageError as exc:
                    self.problem(value_node, f"{where}.default: {exc.message}")
                    continue
            choices = raw.get("choices") or ()
            if not isinstance(choices, list | tuple):
                self.problem(value_node, f"{where}.choices must be a list")
                choices = ()
            if choices and default is not None and default not in choices:
                listed = ", ".join(map(str, choices))
                self.problem(value_node, f"{where}.default {default!r} is not one of {listed}")
                continue
            required = raw.get("required", default is None)
            if not isinstance(required, bool):
                self.problem(value_node, f"{where}.required must be true or false")
                continue
            params[name] = ParamSpec(
                name, type_, default, required, str(raw.get("description", "")), tuple(choices)
            )
        return params

    def steps(self, node: yaml.Node) -> list[Step]:
        if not isinstance(node, yaml.SequenceNode) or not node.value:
            self.problem(node, "'toolchain' must be a non-empty list of steps (- step-id: {...})")
            return []
        steps: list[Step] = []
        seen: set[str] = set()
        previous: str | None = None
        for entry in node.value:
            if not isinstance(entry, yaml.MappingNode) or len(entry.value) != 1:
                self.problem(entry, "each step is a single-key mapping: '- step-id: {cmd: ...}'")
                continue
            key_node, body = entry.value[0]
            step_id = str(self.value(key_node))
            if not _STEP_ID_RE.match(step_id):
                self.problem(
                    key_node, f"step id {step_id!r} may hold letters, digits, '.', '_', '-'"
                )
            twice = step_id in seen
            if twice:
                self.problem(key_node, f"step id {step_id!r} is used twice")
            seen.add(step_id)
            step = self.step(step_id, key_node, body, previous)
            # The first of the name stands: needs are checked against it, not a copy of it.
            if step is not None and not twice:
                steps.append(step)
            previous = step_id
        return steps

    def step(
        self, step_id: str, key_node: yaml.Node, body: yaml.Node, previous: str | None
    ) -> Step | None:
        where = f"step {step_id!r}"
        items = self.mapping(body, where, _STEP_KEYS)
        if "cmd" not in items:
            self.problem(body, f"{where}: missing 'cmd' (the tool to run)")
            return None
        cmd = self.string(items["cmd"], f"{where}: cmd")
        if cmd is not None and not cmd.strip():
            self.problem(items["cmd"][1], f"{where}: cmd is empty; name the tool to run")
        cmd = cmd or ""
        if cmd and not is_tool_name(cmd.split("@")[0].split("=")[0]):
            self.problem(items["cmd"][1], f"{where}: cmd {cmd!r} is not a tool name")
        version = ""
        if "version" in items:
            version_node = items["version"][1]
            raw = self.value(version_node)
            if isinstance(raw, int | float) and not isinstance(raw, bool):
                written = version_node.value  # the text as written: 1.10, not 1.1
                self.problem(
                    version_node,
                    f"{where}: version {written} is a number (YAML reads 3.10 as 3.1); "
                    f'quote it: version: "{written}"',
                )
            elif not isinstance(raw, str):
                self.problem(version_node, f'{where}: version must be a string such as "0.1.0"')
            else:
                version = raw.strip()
        if cmd:
            try:
                parse_spec(cmd, version=version or None)
            except UsageError as exc:
                node = items.get("version", items["cmd"])[1]
                self.problem(node, f"{where}: {exc.message}")
        args = self.args(items.get("args"), where)
        env = self.env(items.get("env"), f"{where}: env")
        needs: tuple[str, ...] = (previous,) if previous else ()
        if "needs" in items:
            raw_needs = self.value(items["needs"][1])
            if isinstance(raw_needs, str):
                raw_needs = [raw_needs]
            if not isinstance(raw_needs, list) or not all(isinstance(n, str) for n in raw_needs):
                self.problem(items["needs"][1], f"{where}: needs must be a list of step ids")
            else:
                needs = tuple(raw_needs)
        condition = None
        if "if" in items:
            raw_if = self.value(items["if"][1])
            try:
                condition = parse_condition(scalar_text(raw_if))
            except ExpressionError as exc:
                self.problem(items["if"][1], f"{where}: if: bad expression: {exc.message}")
        retries = self.retries(items.get("retries"), where)
        continue_on_error = False
        if "continue_on_error" in items:
            raw_coe = self.value(items["continue_on_error"][1])
            if not isinstance(raw_coe, bool):
                self.problem(
                    items["continue_on_error"][1], f"{where}: continue_on_error is true/false"
                )
            else:
                continue_on_error = raw_coe
        by_platform: dict[str, PlatformStep] = {}
        if "by_platform" in items:
            for platform, (_, p_node) in self.mapping(
                items["by_platform"][1], f"{where}: by_platform", _PLATFORMS
            ).items():
                p_items = self.mapping(p_node, f"{where}: by_platform.{platform}", _PLATFORM_KEYS)
                by_platform[platform] = PlatformStep(
                    self.args(p_items.get("args"), where) if "args" in p_items else None,
                    self.env(p_items.get("env"), f"{where}: by_platform.{platform}.env")
                    if "env" in p_items
                    else None,
                )
        return Step(
            id=step_id,
            cmd=cmd,
            version=version,
            args=args,
            env=env,
            needs=needs,
            condition=condition,
            timeout=self.duration(items.get("timeout"), f"{where}: timeout"),
            retries=retries,
            continue_on_error=continue_on_error,
            by_platform=by_platform,
            description=self.string(items.get("description"), f"{where}: description") or "",
            line=key_node.start_mark.line + 1,
            runs_on=self.selector(items.get("runs_on"), f"{where}: runs_on"),
        )

    def args(self, item: tuple[yaml.Node, yaml.Node] | None, where: str) -> tuple[Template, ...]:
        if item is None:
            return ()
        node = item[1]
        if not isinstance(node, yaml.SequenceNode):
            self.problem(node, f"{where}: args must be a list (each item is one argument)")
            return ()
        args = []
        for index, arg_node in enumerate(node.value):
            template = self.template(arg_node, f"{where}: args[{index}]")
            if template is not None:
                args.append(template)
        return tuple(args)

    def retries(self, item: tuple[yaml.Node, yaml.Node] | None, where: str) -> RetryPolicy:
        if item is None:
            return RetryPolicy()
        node = item[1]
        if isinstance(node, yaml.ScalarNode):
            value = self.value(node)
            if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_RETRIES:
                return RetryPolicy(max=value)
            self.problem(
                node, f"{where}: retries is a count up to {MAX_RETRIES} or {{max, delay, backoff}}"
            )
            return RetryPolicy()
        raw = self.mapping(node, f"{where}: retries", _RETRY_KEYS)
        policy = RetryPolicy()
        if "max" in raw:
            value = self.value(raw["max"][1])
            if (
                not isinstance(value, int)
                or isinstance(value, bool)
                or not 0 <= value <= MAX_RETRIES
            ):
                self.problem(
                    raw["max"][1], f"{where}: retries.max is a whole number, 0 to {MAX_RETRIES}"
                )
            else:
                policy = replace(policy, max=value)
        if "delay" in raw:
            try:
                policy = replace(policy, delay=parse_duration(self.value(raw["delay"][1])))
            except ValueError as exc:
                self.problem(raw["delay"][1], f"{where}: retries.delay must be {exc}")
        if "backoff" in raw:
            value = self.value(raw["backoff"][1])
            if (
                not isinstance(value, int | float)
                or isinstance(value, bool)
                or not 1 <= value <= MAX_BACKOFF
            ):
                self.problem(
                    raw["backoff"][1], f"{where}: retries.backoff is a number, 1 to {MAX_BACKOFF}"
                )
            else:
                policy = replace(policy, backoff=float(value))
        return policy
