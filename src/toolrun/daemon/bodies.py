"""A request's body as a mapping, read strictly, so that what a caller meant is never guessed:
a key given twice, ``NaN`` or ``Infinity``, and a number or boolean where a string is meant
are refused. In YAML (the seed's default) a plain scalar is the text it was written as, so
``version: 0.1`` is "0.1" and ``version: 1.10`` stays "1.10"; only true, false and null are
read as such. Anchors and aliases are refused (a few hundred bytes of them name gigabytes).
"""

from __future__ import annotations

import json
from typing import Any

from ..errors import UsageError

MAX_BODY = 1024 * 1024


class BadRequest(UsageError):
    """A request the daemon cannot take; ``field`` says which part was wrong."""

    def __init__(self, message: str, *, field: str | None = None, status: int = 400) -> None:
        super().__init__(message, field=field)
        self.status = status


async def decode_body_off_loop(body: bytes, *, kind: str) -> dict[str, Any]:
    """``decode_body`` in a worker thread for YAML, whose parser needs up to seconds for a body
    near the limit; JSON is parsed at hundreds of MB/s and stays on the loop."""
    if kind == "json":
        return decode_body(body, kind=kind)
    import asyncio

    return await asyncio.to_thread(decode_body, body, kind=kind)


def decode_body(body: bytes, *, kind: str) -> dict[str, Any]:
    """A JSON or YAML body as a mapping; an empty body is an empty mapping."""
    if len(body) > MAX_BODY:
        raise BadRequest(f"the body is over {MAX_BODY} bytes", status=413)
    if not body.strip():
        return {}
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadRequest(f"the body is not UTF-8 (byte {exc.start})", field="body") from None
    try:
        data = _parse_json(text) if kind == "json" else _parse_yaml(text)
    except RecursionError:
        raise BadRequest("the body nests too deeply", field="body") from None
    if data is None:
        return {}
    try:
        # JSON's \ud800-style escapes can name half a character, which no tool could be given.
        json.dumps(data, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        raise BadRequest("the body holds an unpaired surrogate, not text", field="body") from None
    if not isinstance(data, dict):
        raise BadRequest(f"the body must be a mapping, not {type(data).__name__}", field="body")
    return data


def _parse_json(text: str) -> Any:
    try:
        return json.loads(text, object_pairs_hook=_mapping, parse_constant=_no_constant)
    except json.JSONDecodeError as exc:
        raise BadRequest(
            f"the body is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}",
            field="body",
        ) from None
    except ValueError:  # an integer of thousands of digits
        raise BadRequest("the body holds a number too long to read", field="body") from None


def _mapping(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    mapping: dict[str, Any] = {}
    for key, value in pairs:
        if key in mapping:
            raise BadRequest(f"the body gives {key!r} twice", field=key)
        mapping[key] = value
    return mapping


def _no_constant(name: str) -> Any:
    raise BadRequest(f"the body holds {name}, which is not a JSON number", field="body")


def _parse_yaml(text: str) -> Any:
    """YAML limited to what JSON can say. Anchors and aliases are refused: a few hundred
    bytes of them name gigabytes of data. Dates stay strings; binary, sets and other typed
    values are refused."""
    import yaml

    loader = _body_loader()
    try:
        for event in yaml.parse(text, Loader=loader):
            if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
                line = event.start_mark.line + 1 if event.start_mark else "?"
                raise BadRequest(
                    f"the body uses a YAML anchor or alias (line {line}), which the daemon "
                    "does not accept",
                    field="body",
                )
        return yaml.load(text, Loader=loader)  # a SafeLoader, narrowed further
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1} column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "cannot be parsed"
        raise BadRequest(f"the body is not valid YAML: {problem}{where}", field="body") from None
    except ValueError:  # an integer of thousands of digits
        raise BadRequest("the body holds a number too long to read", field="body") from None


_LOADER: Any = None


def _body_loader() -> Any:
    global _LOADER
    if _LOADER is None:
        import yaml

        # libyaml's parser where it is installed: several times faster than PyYAML's own.
        base = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

        class BodyLoader(base):  # type: ignore[misc, valid-type]
            pass

        # Dates stay strings; a number keeps its digits as written (see YamlNumber).
        BodyLoader.yaml_implicit_resolvers = {
            first: [(tag, rule) for tag, rule in rules if not tag.endswith(":timestamp")]
            for first, rules in base.yaml_implicit_resolvers.items()
        }

        def refuse(loader: Any, node: Any) -> Any:
            raise yaml.constructor.ConstructorError(
                None, None, f"{node.tag} values are not accepted", node.start_mark
            )

        for kind in ("binary", "set", "timestamp", "omap", "pairs"):
            BodyLoader.add_constructor(f"tag:yaml.org,2002:{kind}", refuse)

        def number(loader: Any, node: Any) -> YamlNumber:
            method = "construct_yaml_int" if node.tag.endswith(":int") else "construct_yaml_float"
            return YamlNumber(node.value, getattr(loader, method)(node))

        for kind in ("int", "float"):
            BodyLoader.add_constructor(f"tag:yaml.org,2002:{kind}", number)

        def mapping(loader: Any, node: Any) -> dict[Any, Any]:
            seen: dict[Any, Any] = {}
            for key_node, _ in node.value:
                key = loader.construct_object(key_node)
                if not isinstance(key, str | bool | None):
                    continue  # construct_mapping says what is wrong with it
                if key in seen:
                    raise BadRequest(
                        f"the body gives {key!r} twice (line {key_node.start_mark.line + 1})",
                        field=str(key),
                    )
                seen[key] = True
            return loader.construct_mapping(node)  # type: ignore[no-any-return]

        BodyLoader.add_constructor("tag:yaml.org,2002:map", mapping)
        _LOADER = BodyLoader
    return _LOADER


class YamlNumber(str):
    """A number in a YAML body: the text it was written as, which is what a string field
    takes (``version: 1.10`` is "1.10", not 1.1), and its value for a field that counts
    (``timeout: 30``)."""

    number: int | float

    def __new__(cls, text: str, number: int | float) -> YamlNumber:
        made = super().__new__(cls, text)
        made.number = number
        return made
