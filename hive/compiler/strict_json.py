"""JSON as the format defines it, with every way Python's parser fails as one error.

Python's `json` accepts NaN and Infinity (not JSON, and no spec, plan or input
can hold them), refuses integers of more than 4,300 digits with a bare
ValueError, and overflows the stack on deep nesting. Specs, plans and `hive run`
inputs all read JSON through `loads`, so each failure reads the same wherever it
comes from, with a position where there is one.
"""

from __future__ import annotations

import json
import re
from typing import Any


class JSONProblem(ValueError):
    """Why `text` is not JSON: `message`; `kind`, one of "syntax", "constant" (NaN,
    Infinity), "too large" (an integer), "too deep"; and where (`offset` into the
    text, 1-based `line` and `col`)."""

    def __init__(self, kind: str, message: str, text: str, offset: int | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.offset = offset  # None: Python's parser does not say where (too large, too deep)
        at = offset or 0
        self.line = text.count("\n", 0, at) + 1
        self.col = at - (text.rfind("\n", 0, at) + 1) + 1

    @property
    def where(self) -> str:
        """' at line L, column C' where the position is known, else ''."""
        return f" at line {self.line}, column {self.col}" if self.offset is not None else ""


class _NonFiniteNumber(Exception):
    def __init__(self, name: str) -> None:
        self.name = name


def _reject_constant(name: str) -> None:
    raise _NonFiniteNumber(name)


_STRING_OR_CONSTANT = re.compile(r'"(?:[^"\\]|\\.)*"|-?Infinity|NaN')


def _constant_offset(text: str, name: str) -> int:
    """Where the first bare `name` (NaN, Infinity, -Infinity) outside strings is."""
    for match in _STRING_OR_CONSTANT.finditer(text):
        if match.group() == name:
            return match.start()
    return 0


def loads(text: str) -> Any:
    """`json.loads(text)`, or a JSONProblem: a syntax error, a NaN or Infinity, an integer
    too large for Python to read, or nesting too deep for its parser."""
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except _NonFiniteNumber as exc:
        offset = _constant_offset(text, exc.name)
        raise JSONProblem("constant", f"{exc.name} is not a JSON number", text, offset) from None
    except json.JSONDecodeError as exc:
        raise JSONProblem("syntax", exc.msg, text, exc.pos) from None
    except ValueError:  # an integer of more than Python's 4,300 digits
        raise JSONProblem("too large", "a number is too large", text) from None
    except RecursionError:
        raise JSONProblem("too deep", "it nests too deeply", text) from None
