"""Value types of the flow language.

Types are small frozen values. Lists carry an upper bound on their length
when one is known (`sample ... x 8` makes a list of at most 8), which is how
the compiler bounds the calls of `map` and `for`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import Field

PRIMITIVES = ("string", "number", "integer", "boolean", "null", "any")
# Integers stay within the range of numbers (floats): |x| < 2**1023, so each converts to a
# float. Bigger ones are an error at parse time (literals) and at run time (arithmetic),
# not a slow or huge value.
MAX_INT_BITS = 1023
# Characters or items of one string or list a flow or a prompt template may build: a
# value doubled in a loop would otherwise take all memory.
MAX_VALUE_SIZE = 1_000_000


_ITEMS = type({}.items())
_VIEWS = (type({}.keys()), type({}.values()), _ITEMS)


def _digits(number: int) -> int:
    """Characters an integer prints to, about: its decimal digits and a sign."""
    return int(abs(number).bit_length() * 0.30103) + 2


def _printed(value: Any) -> int | None:
    """Characters a non-container prints to (None for a container)."""
    if isinstance(value, str | bytes | bytearray):
        return len(value)
    if isinstance(value, bool) or value is None:
        return 5
    if isinstance(value, int):
        return _digits(value)
    if isinstance(value, float):
        return 24
    if isinstance(value, range):
        return len(value) * (_digits(max(abs(value.start), abs(value.stop))) + 1)
    if isinstance(value, (dict, list, tuple, set, frozenset, *_VIEWS)):
        return None
    if isinstance(getattr(value, "_Namespace__attrs", None), dict):  # jinja2's namespace()
        return None
    return 0


def _children(value: Any) -> tuple[int, list[Any]]:
    """A container's own items and what they hold."""
    if isinstance(value, dict):
        return len(value), [*value.keys(), *value.values()]
    if isinstance(value, _ITEMS):
        return len(value), [part for pair in value for part in pair]
    attrs = getattr(value, "_Namespace__attrs", None)
    if isinstance(attrs, dict):
        return len(attrs), [*attrs.values()]
    return len(value), list(value)


def value_size(value: Any) -> int:
    """Characters and items a value holds, repeats counted (what printing it costs:
    `[s] * 1000` holds s a thousand times, a record of the same record twice, doubled
    in a loop, 2**n copies; numbers by their digits). Each distinct container is walked
    once, without recursion (any depth), and counting stops once past MAX_VALUE_SIZE. A
    container that knows its size (`known_size`: a flow list, never changed once built)
    is not walked again, so appending to a list in a loop stays linear."""
    own = _printed(value)
    if own is None:
        own = getattr(value, "known_size", None)
    if own is not None:
        return own
    memo: dict[int, int] = {}
    keep: list[Any] = []  # the containers walked stay alive, so their ids stay theirs
    count, children = _children(value)
    stack = [[value, children, 0, count]]  # container, its children, next child, size
    while True:
        frame = stack[-1]
        container, children, index, size = frame
        while index < len(children) and size <= MAX_VALUE_SIZE:
            child = children[index]
            index += 1
            printed = _printed(child)
            if printed is None:
                printed = getattr(child, "known_size", None)
            if printed is None:
                known = memo.get(id(child))
                if known is None:
                    frame[2], frame[3] = index, size
                    keep.append(child)
                    child_count, grandchildren = _children(child)
                    stack.append([child, grandchildren, 0, child_count])
                    break
                printed = known
            size += printed
        else:
            memo[id(container)] = size
            stack.pop()
            if not stack:
                return size
            stack[-1][3] += size


@dataclass(frozen=True)
class Type:
    kind: str  # a primitive, "list", "record" or "future"
    item: Type | None = None  # list / future element
    fields: tuple[tuple[str, Type], ...] = ()  # record fields, in order
    bound: int | None = None  # lists: the most items it can hold
    origin: str | None = None  # records: the agent whose reply this is, for messages
    # "any" from merging incompatible types (if/else, loop iterations): the types it may
    # be, so reading a field none of them has is still an error. Empty: truly unknown.
    # Diagnostics only: left out of the plan when empty.
    alternatives: Annotated[tuple[Type, ...], Field(exclude_if=lambda v: not v)] = ()

    def __str__(self) -> str:
        if self.kind == "list":
            return f"list[{self.item}]" + (f"<={self.bound}" if self.bound is not None else "")
        if self.kind == "future":
            return f"future[{self.item}]"
        if self.kind == "record":
            inner = ", ".join(f"{k}: {v}" for k, v in self.fields)
            return "{" + inner + "}"
        if self.alternatives:
            return " | ".join(str(t) for t in self.alternatives)
        return self.kind

    def field(self, name: str) -> Type | None:
        for key, value in self.fields:
            if key == name:
                return value
        return None

    def with_fields(self, *extra: tuple[str, Type]) -> Type:
        names = {k for k, _ in extra}
        kept = tuple((k, v) for k, v in self.fields if k not in names)
        return Type("record", fields=kept + tuple(extra), origin=self.origin)


STRING = Type("string")
NUMBER = Type("number")
INTEGER = Type("integer")
BOOLEAN = Type("boolean")
NULL = Type("null")
ANY = Type("any")


def list_of(item: Type, bound: int | None = None) -> Type:
    return Type("list", item=item, bound=bound)


def future_of(item: Type) -> Type:
    return Type("future", item=item)


def record(*fields: tuple[str, Type], origin: str | None = None) -> Type:
    return Type("record", fields=tuple(fields), origin=origin)


_TYPE_NAME = re.compile(r"^(?:list\[(\w+)\]|(\w+))$")


def parse_type(name: str, bound: int | None = None) -> Type:
    """`string`, `list[integer]`, ... (already checked against the spec schema's pattern)."""
    match = _TYPE_NAME.match(name)
    assert match, name
    if match.group(1):
        return list_of(Type(match.group(1)), bound)
    return Type(match.group(2))


def is_numeric(t: Type) -> bool:
    return t.kind in ("number", "integer", "any")


def assignable(source: Type, target: Type) -> bool:
    """Whether a value of type `source` may be used where `target` is declared."""
    if ANY in (source, target) or source.kind == "any" or target.kind == "any":
        return True
    if source.kind == "integer" and target.kind == "number":
        return True
    if source.kind != target.kind:
        return False
    if source.kind == "list":
        return assignable(source.item or ANY, target.item or ANY)
    return True


def unify(a: Type, b: Type) -> Type:
    """The type of a value that is either `a` or `b` (if/else merges)."""
    if a == b:
        return a
    if {a.kind, b.kind} == {"integer", "number"}:
        return NUMBER
    if a.kind == b.kind == "list":
        bound = None if a.bound is None or b.bound is None else max(a.bound, b.bound)
        if a.bound == 0:  # `[]` holds nothing: its item type says nothing
            return list_of(b.item or ANY, bound)
        if b.bound == 0:
            return list_of(a.item or ANY, bound)
        return list_of(unify(a.item or ANY, b.item or ANY), bound)
    if a.kind == b.kind == "record":
        common = [(k, unify(v, b.field(k))) for k, v in a.fields if b.field(k) is not None]
        return record(*common, origin=a.origin if a.origin == b.origin else None)
    if a.kind == "null":
        return b
    if b.kind == "null":
        return a
    return _either(a, b)


MAX_ALTERNATIVES = 4  # more than this many possible types: unknown


def _either(a: Type, b: Type) -> Type:
    """`any` remembering that the value is `a` or `b` (unknown if either is unknown)."""
    options: list[Type] = []
    for t in (a, b):
        if t.kind == "any" and not t.alternatives:
            return ANY
        for option in t.alternatives or (t,):
            kin = next((i for i, o in enumerate(options) if o.kind == option.kind), None)
            if kin is None:
                options.append(option)
            else:  # one entry per kind: unify within it (records keep common fields)
                options[kin] = unify(options[kin], option)
    if {"integer", "number"} <= {o.kind for o in options}:
        options.remove(INTEGER)  # an integer or a number is a number, as in unify
    if len(options) > MAX_ALTERNATIVES or any(_has_union(o) for o in options):
        # Unions stay flat: one inside another (a loop nesting a value into itself)
        # would grow every pass, so that value is simply unknown.
        return ANY
    return Type("any", alternatives=tuple(sorted(options, key=str)))


def _has_union(t: Type) -> bool:
    if t.kind == "any":
        return bool(t.alternatives)
    if t.item is not None and _has_union(t.item):
        return True
    return any(_has_union(v) for _, v in t.fields)
