"""Run-time values of the flow language.

A call's result is a `Record` (a dict of `text` and the extracted fields);
lists of results are `RecordList`s. Both render in prompt templates the way
a prompt author expects: a record as its text, a list as one item per line,
while `{{ r.answer }}` and `{% for n in notes %}` still reach the fields.
"""

from __future__ import annotations

import asyncio
import math
from typing import Any

from hive.compiler.types import MAX_INT_BITS, MAX_VALUE_SIZE, value_size
from hive.runtime.errors import RunError

_UNJOINED = "a spawned call's handle is not a value: join it first"


class Record(dict):
    def __str__(self) -> str:
        if "text" in self:
            return str(self["text"])
        return ", ".join(f"{k}: {to_text(v)}" for k, v in self.items())


class RecordList(list):
    # Set where the flow builds one (its size was checked): `value_size` then reads it
    # instead of walking the list. Flow lists are never changed once built.
    known_size: int | None = None

    def __str__(self) -> str:
        return "\n".join(to_text(v) for v in self)


def to_text(value: Any) -> str:
    """How a value reads in a prompt or in `str()`: null is empty, booleans lower-case."""
    if value is None:
        return ""
    if isinstance(value, asyncio.Future):
        raise RunError(_UNJOINED)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list) and not isinstance(value, RecordList):
        return str(RecordList(value))
    return str(value)


def for_template(value: Any) -> Any:
    """A value prepared for a Jinja2 context (records and lists render as text)."""
    if isinstance(value, asyncio.Future):
        raise RunError(_UNJOINED)
    if isinstance(value, dict) and not isinstance(value, Record):
        return Record({k: for_template(v) for k, v in value.items()})
    if isinstance(value, list) and not isinstance(value, RecordList):
        return RecordList(for_template(v) for v in value)
    return value


def plain(value: Any) -> Any:
    """Records and lists as plain dicts and lists (for JSON output)."""
    if isinstance(value, asyncio.Future):
        raise RunError(_UNJOINED)
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def truthy(value: Any) -> bool:
    """Conditions: false, null, 0, "" and [] are false (as in Python)."""
    return bool(value)


def describe(value: Any, limit: int = 60) -> str:
    """A short rendering of a value for error messages."""
    if isinstance(value, int) and value.bit_length() > MAX_INT_BITS:
        return f"an integer of {value.bit_length():,} bits"
    try:
        text = repr(plain(value))
    except ValueError:  # an integer too long to print, inside a list or record
        return "a value holding an integer too long to print"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def check_size(size: int, what: str) -> None:
    """A value doubled in a loop (`repeat 64: s = s + s`, `r = {a: r, b: r}`) would
    take all memory: past MAX_VALUE_SIZE it is an error."""
    if size > MAX_VALUE_SIZE:
        raise RunError(
            f"{what} would make {size:,} characters or items; the limit is {MAX_VALUE_SIZE:,}"
        )


def _number(value: Any, op: str) -> float | int:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise RunError(f"'{op}' needs numbers, got {describe(value)}")
    return value


def binop(op: str, left: Any, right: Any) -> Any:
    """The flow language's binary operators, with clear errors on bad operands."""
    try:
        result = _binop(op, left, right)
    except OverflowError:  # an integer too large for a float (int / int, int + float)
        raise RunError(f"'{op}' overflowed: {describe(left)} {op} {describe(right)}") from None
    if (isinstance(result, float) and not math.isfinite(result)) or (
        isinstance(result, int) and result.bit_length() > MAX_INT_BITS
    ):
        raise RunError(f"'{op}' overflowed: {describe(left)} {op} {describe(right)}")
    return result


def _binop(op: str, left: Any, right: Any) -> Any:
    if op == "==":
        return left == right
    if op == "!=":
        return left != right
    if op == "and":
        return left if not truthy(left) else right
    if op == "or":
        return left if truthy(left) else right
    if op == "in":
        if isinstance(right, str):
            return isinstance(left, str) and left in right
        if isinstance(right, list):
            return left in right
        if isinstance(right, dict):
            return isinstance(left, str) and left in right
        raise RunError(f"'in' needs a string, list or record on the right, got {describe(right)}")
    if op == "+":
        if isinstance(left, str) and isinstance(right, str):
            check_size(len(left) + len(right), "'+'")
            return left + right
        if isinstance(left, list) and isinstance(right, list):
            size = value_size(left) + value_size(right)
            check_size(size, "'+'")
            joined = RecordList([*left, *right])
            joined.known_size = size
            return joined
        return _number(left, op) + _number(right, op)
    if op in ("<", "<=", ">", ">="):
        both_text = isinstance(left, str) and isinstance(right, str)
        if not both_text:
            _number(left, op), _number(right, op)
        return {"<": left < right, "<=": left <= right, ">": left > right, ">=": left >= right}[op]
    a, b = _number(left, op), _number(right, op)
    if op == "-":
        return a - b
    if op == "*":
        return a * b
    if op in ("/", "%"):
        if b == 0:
            raise RunError(f"'{op}' by zero")
        return a / b if op == "/" else a % b
    raise RunError(f"unknown operator {op!r}")


def unop(op: str, value: Any) -> Any:
    if op == "not":
        return not truthy(value)
    if op == "-":
        return -_number(value, "-")
    raise RunError(f"unknown operator {op!r}")


def builtin(name: str, args: list[Any], attrs: dict[str, Any]) -> Any:
    """len, str, int, float, lower, strip, concat. A null (a field the reply lacked)
    reads as empty text in the text functions."""
    (value,) = args
    if name == "len":
        if not isinstance(value, str | list | dict):
            raise RunError(f"len() needs a string or list, got {describe(value)}")
        return len(value)
    if name in ("str", "lower", "strip"):
        check_size(value_size(value), f"{name}()")  # before to_text prints it
    if name == "str":
        return to_text(value)
    if name in ("lower", "strip"):
        text = to_text(value)
        return text.lower() if name == "lower" else text.strip()
    if name in ("int", "float"):
        try:
            number = float(str(value).strip()) if isinstance(value, str) else value
            if isinstance(number, bool) or not isinstance(number, int | float):
                raise ValueError
            return int(number) if name == "int" else float(number)
        except (ValueError, OverflowError):
            raise RunError(f"{name}() cannot convert {describe(value)} to a number") from None
    if name == "concat":
        if not isinstance(value, list):
            raise RunError(f"concat() needs a list, got {describe(value)}")
        sep = str(attrs.get("sep", "\n"))
        check_size(value_size(value) + len(sep) * max(len(value) - 1, 0), "concat()")
        return sep.join(to_text(v) for v in value)
    raise RunError(f"unknown built-in {name}()")
