"""The flow program's syntax tree: frozen dataclasses, each with its offset in the flow text.

`pos` is a character offset into the flow string; `SourceDoc.span_in_string`
turns it into a file line and column when a message needs one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Expr:
    pos: int


@dataclass(frozen=True)
class Literal(Expr):
    value: Any  # str | int | float | bool | None


@dataclass(frozen=True)
class Var(Expr):
    name: str


@dataclass(frozen=True)
class Field(Expr):
    value: Expr
    name: str
    name_pos: int


@dataclass(frozen=True)
class Index(Expr):
    value: Expr
    index: Expr


@dataclass(frozen=True)
class Keyword:
    name: str
    value: Expr
    pos: int


@dataclass(frozen=True)
class Call(Expr):
    """`name(args)`: an agent call or a built-in (vote, best, map, beam, tree, refine, join, len...)."""

    name: str
    args: tuple[Expr, ...]
    kwargs: tuple[Keyword, ...]


@dataclass(frozen=True)
class Sample(Expr):
    """`sample call x N`: N independent samples of one call."""

    call: Expr
    n: int


@dataclass(frozen=True)
class Resample(Expr):
    """`resample call until cond max K`: re-sample until `cond` (over `_`) holds."""

    call: Expr
    until: Expr
    max_attempts: int


@dataclass(frozen=True)
class Spawn(Expr):
    call: Expr


@dataclass(frozen=True)
class Unary(Expr):
    op: str  # "not" | "-"
    operand: Expr


@dataclass(frozen=True)
class Binary(Expr):
    op: str
    left: Expr
    right: Expr


@dataclass(frozen=True)
class ListExpr(Expr):
    items: tuple[Expr, ...]


@dataclass(frozen=True)
class RecordExpr(Expr):
    entries: tuple[tuple[str, Expr], ...]


@dataclass(frozen=True)
class Stmt:
    pos: int


@dataclass(frozen=True)
class Assign(Stmt):
    name: str
    value: Expr


@dataclass(frozen=True)
class ExprStmt(Stmt):
    value: Expr


@dataclass(frozen=True)
class Return(Stmt):
    value: Expr


@dataclass(frozen=True)
class If(Stmt):
    branches: tuple[tuple[Expr, tuple[Stmt, ...]], ...]  # (condition, body) for if and each elif
    orelse: tuple[Stmt, ...]


@dataclass(frozen=True)
class For(Stmt):
    var: str
    iterable: Expr
    body: tuple[Stmt, ...]


@dataclass(frozen=True)
class Repeat(Stmt):
    count: int
    body: tuple[Stmt, ...]


@dataclass(frozen=True)
class While(Stmt):
    cond: Expr
    max_iterations: int
    body: tuple[Stmt, ...]


@dataclass(frozen=True)
class Program:
    body: tuple[Stmt, ...]
