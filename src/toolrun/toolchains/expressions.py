"""The ``${{ expr }}`` language: a small, safe expression language (never Python ``eval``).

    expr    := or
    or      := and ("||" and)*
    and     := not ("&&" not)*
    not     := "!" not | compare
    compare := primary (("==" | "!=" | "<" | "<=" | ">" | ">=") primary)?
    primary := 'string' | "string" | number | true | false | null
             | name ("." name | "[" string "]")*          params.table, steps.a.outputs.x
             | name "(" [expr ("," expr)*] ")"           success(), contains(a, b)
             | "(" expr ")"

Comparisons of strings ignore case, as in GitHub Actions; a missing property is null.

It stays whole: it is one small language (tokens, parser, evaluator and the ``${{ }}``
templates around it), each part reading the ``Node`` of the one before; a change to the
grammar above touches all of them.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping

from ..records import record

# `typing` costs milliseconds at start-up; annotations alone never need it at run time.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

_TOKEN_RE = re.compile(
    r"""\s*(?:
        (?P<number>-?\d+(?:\.\d+)?)
      | (?P<string>'(?:[^']|'')*'|"(?:[^"\\]|\\.)*")
      | (?P<op>==|!=|<=|>=|&&|\|\||[<>!().,\[\]])
      | (?P<name>[A-Za-z_][A-Za-z0-9_-]*)
    )""",
    re.VERBOSE,
)
STATUS_FUNCTIONS = ("success", "failure", "always", "cancelled")


class ExpressionError(Exception):
    """A syntax or evaluation error; ``column`` counts from 0 within the expression."""

    def __init__(self, message: str, column: int = 0) -> None:
        super().__init__(message)
        self.message = message
        self.column = column


@record(frozen=True)
class Node:
    """A node of a parsed expression."""

    kind: str  # literal, path, call, not, and, or, compare
    value: Any = None
    children: tuple[Node, ...] = ()


def _tokens(text: str) -> list[tuple[str, str, int]]:
    tokens = []
    position = 0
    while position < len(text):
        if text[position:].strip() == "":
            break
        match = _TOKEN_RE.match(text, position)
        if match is None or match.end() == position:
            start = position + len(text[position:]) - len(text[position:].lstrip())
            raise ExpressionError(f"unexpected character {text[start]!r}", start)
        kind = match.lastgroup
        assert kind is not None
        tokens.append((kind, match[kind], match.start(kind)))
        position = match.end()
    tokens.append(("end", "", len(text)))
    return tokens


MAX_DEPTH = 64  # nesting of ( ) and ! an expression may have: past any real condition


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = _tokens(text)
        self.index = 0
        self.depth = 0

    def deeper(self) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise ExpressionError(
                f"the expression nests more than {MAX_DEPTH} levels deep", self.peek()[2]
            )

    def peek(self) -> tuple[str, str, int]:
        return self.tokens[self.index]

    def take(self) -> tuple[str, str, int]:
        token = self.tokens[self.index]
        self.index += 1
        return token

    def expect(self, value: str) -> None:
        kind, text, column = self.take()
        if text != value or kind != "op":
            found = "the end" if kind == "end" else repr(text)
            raise ExpressionError(f"expected {value!r}, found {found}", column)

    def parse(self) -> Node:
        if self.peek()[0] == "end":
            raise ExpressionError("empty expression", 0)
        node = self.parse_or()
        kind, text, column = self.peek()
        if kind != "end":
            raise ExpressionError(f"unexpected {text!r}", column)
        return node

    def parse_or(self) -> Node:
        self.deeper()
        node = self.parse_and()
        while self.peek()[1] == "||":
            self.take()
            node = Node("or", children=(node, self.parse_and()))
        self.depth -= 1
        return node

    def parse_and(self) -> Node:
        node = self.parse_not()
        while self.peek()[1] == "&&":
            self.take()
            node = Node("and", children=(node, self.parse_not()))
        return node

    def parse_not(self) -> Node:
        if self.peek()[:2] == ("op", "!"):
            self.take()
            self.deeper()
            node = Node("not", children=(self.parse_not(),))
            self.depth -= 1
            return node
        return self.parse_compare()

    def parse_compare(self) -> Node:
        node = self.parse_primary()
        kind, text, _ = self.peek()
        if kind == "op" and text in ("==", "!=", "<", "<=", ">", ">="):
            self.take()
            node = Node("compare", text, (node, self.parse_primary()))
        return node

    def parse_primary(self) -> Node:
        kind, text, column = self.take()
        if kind == "number":
            return Node("literal", float(text) if "." in text else int(text))
        if kind == "string":
            if text[0] == "'":
                return Node("literal", text[1:-1].replace("''", "'"))
            return Node("literal", re.sub(r"\\(.)", r"\1", text[1:-1]))
        if kind == "op" and text == "(":
            node = self.parse_or()
            self.expect(")")
            return node
        if kind == "name":
            if text in ("true", "false"):
                return Node("literal", text == "true")
            if text == "null":
                return Node("literal", None)
            if self.peek()[1] == "(":
                return self.parse_call(text, column)
            return self.parse_path(text)
        found = "the end" if kind == "end" else repr(text)
        raise ExpressionError(f"expected a value, found {found}", column)

    def parse_call(self, name: str, column: int) -> Node:
        if name not in FUNCTIONS:
            raise ExpressionError(
                f"unknown function {name!r} (known: {', '.join(sorted(FUNCTIONS))})", column
            )
        self.expect("(")
        arguments: list[Node] = []
        if self.peek()[1] != ")":
            arguments.append(self.parse_or())
            while self.peek()[1] == ",":
                self.take()
                arguments.append(self.parse_or())
        self.expect(")")
        arity = FUNCTIONS[name][0]
        if len(arguments) != arity:
            raise ExpressionError(f"{name}() takes {arity} argument(s)", column)
        return Node("call", name, tuple(arguments))

    def parse_path(self, first: str) -> Node:
        parts = [first]
        while True:
            kind, text, column = self.peek()
            if text == ".":
                self.take()
                kind, text, column = self.take()
                if kind != "name":
                    raise ExpressionError("expected a property name after '.'", column)
                parts.append(text)
            elif text == "[":
                self.take()
                kind, text, column = self.take()
                if kind != "string":
                    raise ExpressionError("expected a quoted key inside [ ]", column)
                parts.append(text[1:-1])
                self.expect("]")
            else:
                return Node("path", tuple(parts))


def parse(text: str) -> Node:
    """Parse one expression (the text between ``${{`` and ``}}``)."""
    return _Parser(text).parse()


def paths(node: Node) -> list[tuple[str, ...]]:
    """Every context path an expression reads, for checking names before a run starts."""
    found = [node.value] if node.kind == "path" else []
    for child in node.children:
        found.extend(paths(child))
    return found


def calls(node: Node) -> set[str]:
    found = {node.value} if node.kind == "call" else set()
    for child in node.children:
        found |= calls(child)
    return found


@record
class Context:
    """What expressions can see: plain data, plus the status of the steps a step needs."""

    values: Mapping[str, Any]
    needs_status: Callable[[], str] = lambda: "success"  # success, failure or cancelled


def evaluate(node: Node, context: Context) -> Any:
    if node.kind == "literal":
        return node.value
    if node.kind == "path":
        value: Any = context.values
        for part in node.value:
            if isinstance(value, Mapping):
                value = value.get(part)
            else:
                return None
        return value
    if node.kind == "not":
        return not truthy(evaluate(node.children[0], context))
    if node.kind == "and":
        left = evaluate(node.children[0], context)
        return evaluate(node.children[1], context) if truthy(left) else left
    if node.kind == "or":
        left = evaluate(node.children[0], context)
        return left if truthy(left) else evaluate(node.children[1], context)
    if node.kind == "compare":
        return _compare(
            node.value, evaluate(node.children[0], context), evaluate(node.children[1], context)
        )
    arguments = [evaluate(child, context) for child in node.children]
    return FUNCTIONS[node.value][1](context, *arguments)


def truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value != "" and value.lower() not in ("false", "0")
    return bool(value)


def to_text(value: Any) -> str:
    """How a value reads inside an argument or an env value."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _compare(op: str, left: Any, right: Any) -> bool:
    left, right = _comparable(left, right)
    try:
        if op == "==":
            return bool(left == right)
        if op == "!=":
            return bool(left != right)
        if op == "<":
            return bool(left < right)
        if op == "<=":
            return bool(left <= right)
        if op == ">":
            return bool(left > right)
        return bool(left >= right)
    except TypeError:
        return False


def _comparable(left: Any, right: Any) -> tuple[Any, Any]:
    # Values from the command line arrive as strings: compare "3" with 3 as numbers.
    if isinstance(left, str) and isinstance(right, int | float) and not isinstance(right, bool):
        return _number(left), right
    if isinstance(right, str) and isinstance(left, int | float) and not isinstance(left, bool):
        return left, _number(right)
    if isinstance(left, bool) and isinstance(right, str):
        return left, truthy(right)
    if isinstance(right, bool) and isinstance(left, str):
        return truthy(left), right
    if isinstance(left, str) and isinstance(right, str):
        return left.lower(), right.lower()
    return left, right


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def _contains(context: Context, haystack: Any, needle: Any) -> bool:
    if isinstance(haystack, list | tuple):
        return any(to_text(item).lower() == to_text(needle).lower() for item in haystack)
    return to_text(needle).lower() in to_text(haystack).lower()


def _starts_with(context: Context, text: Any, prefix: Any) -> bool:
    return to_text(text).lower().startswith(to_text(prefix).lower())


def _ends_with(context: Context, text: Any, suffix: Any) -> bool:
    return to_text(text).lower().endswith(to_text(suffix).lower())


FUNCTIONS: dict[str, tuple[int, Callable[..., Any]]] = {
    "success": (0, lambda context: context.needs_status() == "success"),
    "failure": (0, lambda context: context.needs_status() == "failure"),
    "cancelled": (0, lambda context: context.needs_status() == "cancelled"),
    "always": (0, lambda context: True),
    "contains": (2, _contains),
    "startsWith": (2, _starts_with),
    "endsWith": (2, _ends_with),
}


@record(frozen=True)
class Template:
    """A string with ``${{ }}`` parts: evaluated to one string, always one argv item."""

    parts: tuple[str | Node, ...]

    @property
    def is_plain(self) -> bool:
        return all(isinstance(part, str) for part in self.parts)

    def nodes(self) -> list[Node]:
        return [part for part in self.parts if isinstance(part, Node)]

    def render(self, context: Context) -> str:
        return "".join(
            part if isinstance(part, str) else to_text(evaluate(part, context))
            for part in self.parts
        )

    def evaluate_single(self, context: Context) -> Any:
        """The raw value when the template is exactly one expression (for ``if``)."""
        if len(self.parts) == 1 and isinstance(self.parts[0], Node):
            return evaluate(self.parts[0], context)
        return self.render(context)


def parse_template(text: str) -> Template:
    """Split ``text`` into literal text and parsed expressions.

    ExpressionError.column is the offset within ``text``.
    """
    parts: list[str | Node] = []
    position = 0
    while (start := text.find("${{", position)) >= 0:
        end = _closing(text, start + 3)
        if end < 0:
            raise ExpressionError("'${{' without a closing '}}'", start)
        if start > position:
            parts.append(text[position:start])
        try:
            parts.append(parse(text[start + 3 : end]))
        except ExpressionError as exc:
            raise ExpressionError(exc.message, start + 3 + exc.column) from None
        position = end + 2
    if position < len(text):
        parts.append(text[position:])
    return Template(tuple(parts))


def _closing(text: str, position: int) -> int:
    """Where the ``}}`` that ends an expression starts, a ``}}`` inside a quoted string not
    counting (``${{ contains(a, '}}') }}``); -1 when there is none."""
    quote = ""
    while position < len(text):
        char = text[position]
        if quote:
            if char == "\\" and quote == '"':
                position += 1
            elif char == quote:
                if quote == "'" and text.startswith("''", position):
                    position += 1  # '' is a quote inside a single-quoted string
                else:
                    quote = ""
        elif char in "'\"":
            quote = char
        elif text.startswith("}}", position):
            return position
        position += 1
    return -1


def parse_condition(text: str) -> Template:
    """An ``if:`` value: a bare expression, or one wrapped in ``${{ }}``."""
    stripped = text.strip()
    if "${{" in stripped:
        return parse_template(stripped)
    return Template((parse(stripped),))
