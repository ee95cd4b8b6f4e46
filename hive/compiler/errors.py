"""Located diagnostics for specs.

Every compiler error carries a `Span` that comes from a parser (YAML node
marks, Lark token positions mapped back into the file), never from a guess.
`Diagnostic.format()` prints `file:line:col: error: message`, the source line
and a caret, which is what editors and CI annotations expect.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

from hive.errors import HiveError

Severity = Literal["error", "warning"]


@dataclass(frozen=True)
class Span:
    """A 1-based position in a spec file."""

    file: str
    line: int
    col: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}"


@dataclass(frozen=True)
class Diagnostic:
    severity: Severity
    message: str
    span: Span | None = None
    hint: str | None = None
    source_line: str | None = field(default=None, compare=False)

    def format(self, *, with_source: bool = True) -> str:
        where = f"{self.span}: " if self.span else ""
        text = f"{where}{self.severity}: {self.message}"
        if self.hint:
            text += f" ({self.hint})"
        if with_source and self.span and self.source_line is not None:
            caret = " " * (self.span.col - 1) + "^"
            text += f"\n    {self.source_line.rstrip()}\n    {caret}"
        return text

    def format_github(self) -> str:
        """A GitHub Actions workflow command, shown as an annotation on the file."""
        kind = "error" if self.severity == "error" else "warning"
        message = self.message + (f" ({self.hint})" if self.hint else "")
        message = message.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
        if self.span is None:
            return f"::{kind}::{message}"
        s = self.span
        return f"::{kind} file={s.file},line={s.line},col={s.col}::{message}"


class SpecError(HiveError):
    """One or more errors found in a spec; `diagnostics` holds them all, in file order."""

    def __init__(self, diagnostics: Iterable[Diagnostic]):
        self.diagnostics = sorted(diagnostics, key=_position)
        assert self.diagnostics, "SpecError needs at least one diagnostic"
        super().__init__("\n".join(d.format(with_source=False) for d in self.diagnostics))

    def format(self) -> str:
        return "\n".join(d.format() for d in self.diagnostics)


class PlanError(HiveError):
    """A plan file that cannot be read: not JSON, another version, or not a plan."""


def _position(d: Diagnostic) -> tuple[str, int, int]:
    if d.span is None:
        return ("", 0, 0)
    return (d.span.file, d.span.line, d.span.col)


def closest(name: str, candidates: Iterable[str]) -> str | None:
    """The candidate closest to `name`, or None when nothing is close."""
    close = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.6)
    return close[0] if close else None


def did_you_mean(name: str, candidates: Iterable[str]) -> str | None:
    """A hint naming the closest candidate, or None when nothing is close."""
    close = closest(name, candidates)
    return f"did you mean '{close}'?" if close else None
