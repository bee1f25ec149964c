"""``@record``: the part of ``dataclasses`` toolrun uses, built without compiling code.

``dataclasses`` writes each class's ``__init__``, ``__repr__`` and ``__eq__`` as source text and
compiles it with ``exec`` when the module is imported, and importing it pulls in ``inspect``.
For toolrun's forty classes that was about 44 ms of the 100 ms ``toolrun exec`` may add to a
tool (see docs/benchmarks.md). A record's methods are closures over its field names instead:
made in microseconds, a little slower per call, which no record is created often enough to
notice. (Unlike dataclasses' ``__repr__``, a record's does not guard against a record holding
itself; none does.)

Why not msgspec's Structs, which declare the shapes toolrun reads and writes as JSON
(json_views, daemon/answers.py, toolchains/document.py)? Importing msgspec costs 28-46 ms where
typer is not loaded (it pulls in ``typing``, ``inspect`` and ``typing_extensions``), and the
records live on the fast paths (``toolrun exec``, ``tool list``, ``history``) that import
neither. Records stay for what never leaves the process.

What it offers is what toolrun uses: fields from the class's annotations with defaults or
``field(default_factory=...)``, ``frozen=True`` (which also makes records hashable),
``__post_init__``, and ``replace()``. Methods a class writes itself are kept.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, TypeVar, dataclass_transform

    T = TypeVar("T")
else:
    # Importing `typing` costs milliseconds at start-up; type checkers read the branch above.
    def dataclass_transform(**_options):
        return lambda function: function


FIELDS = "__record_fields__"
_MISSING = object()


class FrozenRecordError(AttributeError):
    """Assigning to a field of a frozen record."""


class _Field:
    __slots__ = ("default", "default_factory")

    def __init__(self, default: object, default_factory: object) -> None:
        self.default = default
        self.default_factory = default_factory


def field(*, default: Any = _MISSING, default_factory: Callable[[], Any] | None = None) -> Any:
    """A field's default, or a function making one per record (for lists and dicts)."""
    if default is not _MISSING and default_factory is not None:
        raise ValueError("a field takes a default or a default_factory, not both")
    return _Field(default, default_factory)


@dataclass_transform(field_specifiers=(field,))
def record(cls: type[T] | None = None, /, *, frozen: bool = False) -> Any:
    """Make ``cls`` a record: ``@record`` or ``@record(frozen=True)``."""

    def wrap(cls: type[T]) -> type[T]:
        _build(cls, frozen)
        return cls

    return wrap if cls is None else wrap(cls)


def replace(obj: T, /, **changes: Any) -> T:
    """A copy of the record ``obj`` with ``changes`` made."""
    names = getattr(type(obj), FIELDS)
    unknown = set(changes) - set(names)
    if unknown:
        raise TypeError(f"{type(obj).__name__} has no field {sorted(unknown)[0]!r}")
    values = {name: changes[name] if name in changes else getattr(obj, name) for name in names}
    return type(obj)(**values)


def _build(cls: type, frozen: bool) -> None:
    names, defaults, factories = _fields(cls)
    count = len(names)
    set_field = object.__setattr__
    post_init = getattr(cls, "__post_init__", None)

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        if len(args) > count:
            raise TypeError(f"{cls.__name__}() takes {count} arguments, {len(args)} were given")
        for name, value in zip(names, args, strict=False):
            set_field(self, name, value)
        for name in names[len(args) :]:
            if name in kwargs:
                value = kwargs.pop(name)
            elif name in defaults:
                value = defaults[name]
            elif name in factories:
                value = factories[name]()
            else:
                raise TypeError(f"{cls.__name__}() is missing the argument {name!r}")
            set_field(self, name, value)
        if kwargs:
            unexpected = next(iter(kwargs))
            raise TypeError(f"{cls.__name__}() got an unknown or repeated argument {unexpected!r}")
        if post_init is not None:
            post_init(self)

    def __repr__(self: Any) -> str:
        shown = ", ".join(f"{name}={getattr(self, name)!r}" for name in names)
        return f"{type(self).__qualname__}({shown})"

    def __eq__(self: Any, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return all(getattr(self, name) == getattr(other, name) for name in names)

    methods: dict[str, Any] = {"__init__": __init__, "__repr__": __repr__, "__eq__": __eq__}
    if frozen:

        def __setattr__(self: Any, name: str, value: object) -> None:
            raise FrozenRecordError(f"{cls.__name__} is frozen: cannot assign to {name!r}")

        def __delattr__(self: Any, name: str) -> None:
            raise FrozenRecordError(f"{cls.__name__} is frozen: cannot delete {name!r}")

        def __hash__(self: Any) -> int:
            return hash(tuple(getattr(self, name) for name in names))

        methods |= {"__setattr__": __setattr__, "__delattr__": __delattr__, "__hash__": __hash__}
    elif "__eq__" not in cls.__dict__:
        methods["__hash__"] = None  # equal by value yet mutable: not hashable, as dataclasses
    for name, method in methods.items():
        if name not in cls.__dict__:
            if callable(method):
                method.__qualname__ = f"{cls.__qualname__}.{name}"
            setattr(cls, name, method)
    setattr(cls, FIELDS, names)


def _fields(cls: type) -> tuple[tuple[str, ...], dict[str, object], dict[str, Callable[[], Any]]]:
    names: list[str] = []
    defaults: dict[str, object] = {}
    factories: dict[str, Callable[[], Any]] = {}
    # Not inspect.get_annotations: importing inspect is what this module avoids.
    for name, annotation in cls.__dict__.get("__annotations__", {}).items():  # noqa: RUF063
        if str(annotation).startswith(("ClassVar", "typing.ClassVar")):
            continue
        names.append(name)
        value = cls.__dict__.get(name, _MISSING)
        if isinstance(value, _Field):
            if value.default_factory is not None:
                factories[name] = value.default_factory  # type: ignore[assignment]
                delattr(cls, name)
                continue
            value = value.default
            if value is _MISSING:
                delattr(cls, name)
            else:
                setattr(cls, name, value)
        if value is not _MISSING:
            if isinstance(value, (list, dict, set)):
                kind = type(value).__name__
                raise ValueError(f"{cls.__name__}.{name}: a {kind} default needs default_factory")
            defaults[name] = value
        elif defaults or factories:
            raise TypeError(f"{cls.__name__}.{name}: a field without a default follows defaults")
    return tuple(names), defaults, factories
