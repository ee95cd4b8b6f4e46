"""Parse flow text into the syntax tree, with errors located in the spec file.

One LALR parser is built from `flow.lark` and cached. Lark's exceptions are
turned into `SpecError`s at this boundary: the offset of the bad token is
mapped back into the YAML/JSON file by the caller's `locate` function.
"""

from __future__ import annotations

import ast as pyast
import math
import re
import warnings
from collections.abc import Callable
from functools import cache
from importlib.resources import files

from lark import Lark, Token, Transformer
from lark.exceptions import (
    UnexpectedCharacters,
    UnexpectedEOF,
    UnexpectedInput,
    UnexpectedToken,
)
from lark.indenter import DedentError, Indenter

from hive.compiler import ast
from hive.compiler.errors import Diagnostic, Span, SpecError
from hive.compiler.types import MAX_INT_BITS

MAX_FLOW_CHARS = 1_000_000

# Readable names for the terminals Lark reports as expected.
_TOKEN_NAMES = {
    "NAME": "a name",
    "INT": "an integer",
    "FLOAT": "a number",
    "STRING": "a string",
    "LPAR": "'('",
    "RPAR": "')'",
    "LSQB": "'['",
    "RSQB": "']'",
    "LBRACE": "'{'",
    "RBRACE": "'}'",
    "COLON": "':'",
    "COMMA": "','",
    "EQUAL": "'='",
    "DOT": "'.'",
    "_NL": "a new line",
    "_INDENT": "an indented block",
    "_DEDENT": "the end of a block",
    "BINOP": "an operator",
    "$END": "the end of the flow",
    "MINUS": "'-'",
    "NOT": "'not'",
}

# When Lark expects most of these, say "an expression" instead of listing them.
_EXPRESSION_START = {
    "NAME",
    "INT",
    "FLOAT",
    "STRING",
    "LPAR",
    "LSQB",
    "LBRACE",
    "MINUS",
    "NOT",
    "TRUE",
    "FALSE",
    "NULL",
    "SAMPLE",
    "SPAWN",
    "RESAMPLE",
}
_OPERATORS = {"BINOP", "DOT", "LSQB", "LPAR"}


class _FlowIndenter(Indenter):
    NL_type = "_NL"
    OPEN_PAREN_types = ["LPAR", "LSQB", "LBRACE"]
    CLOSE_PAREN_types = ["RPAR", "RSQB", "RBRACE"]
    INDENT_type = "_INDENT"
    DEDENT_type = "_DEDENT"
    tab_len = 8


@cache
def _parser() -> Lark:
    grammar = files("hive.compiler").joinpath("flow.lark").read_text(encoding="utf-8")
    # The transformer runs inside the parser (no intermediate parse tree): about
    # 1.5x faster on long flows. It is stateless, so one instance serves every parse.
    return Lark(
        grammar,
        parser="lalr",
        postlex=_FlowIndenter(),
        maybe_placeholders=False,
        transformer=_ToAst(),
    )


def _pos(item) -> int:
    """Offset of the first character of a child: a token or an AST node."""
    if isinstance(item, Token):
        return item.start_pos or 0
    if isinstance(item, ast.Expr | ast.Stmt):
        return item.pos
    if isinstance(item, tuple | list) and item:
        return _pos(item[0])
    return 0


class _SyntaxProblem(Exception):
    def __init__(self, pos: int, message: str):
        self.pos = pos
        self.message = message


def _int_literal(token) -> int:
    """An integer token's value; past MAX_INT_BITS (or Python's 4,300-digit conversion
    limit) a syntax problem at the token."""
    text = str(token)
    digits = text.lstrip("0") or "0"
    value = int(digits) if len(digits) <= 400 else None
    if value is None or value.bit_length() > MAX_INT_BITS:
        shown = text if len(text) <= 20 else f"{text[:10]}...({len(text)} digits)"
        raise _SyntaxProblem(_pos(token), f"integer {shown} is too large")
    return value


def _string_value(token: Token) -> str:
    """A string literal's value (Python escapes); a malformed escape is a user error."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # an unknown escape like "\d" keeps its backslash
            return pyast.literal_eval(str(token))
    except (SyntaxError, ValueError) as exc:
        # "(unicode error) 'unicodeescape' codec can't decode ...: truncated \xXX escape"
        reason = str(exc.msg if isinstance(exc, SyntaxError) else exc).rpartition(": ")[2]
        raise _SyntaxProblem(_pos(token), f"invalid string literal: {reason}") from None


class _ToAst(Transformer):
    """Lark tree -> `hive.compiler.ast`. Each method gets the rule's children.

    Positions come from the tokens (keywords are named terminals so that they
    stay in the tree), not from Lark's propagate_positions, which doubles the
    parse time of long flows.
    """

    def start(self, stmts):
        return ast.Program(tuple(stmts))

    def assign(self, c):
        return ast.Assign(_pos(c[0]), str(c[0]), c[1])

    def return_stmt(self, c):
        return ast.Return(_pos(c[0]), c[1])

    def expr_stmt(self, c):
        return ast.ExprStmt(_pos(c[0]), c[0])

    def suite(self, stmts):
        return tuple(stmts)

    def if_stmt(self, c):
        branches = [(c[1], c[2])]
        orelse: tuple = ()
        for clause in c[3:]:
            if clause[0] == "elif":
                branches.append((clause[1], clause[2]))
            else:
                orelse = clause[1]
        return ast.If(_pos(c[0]), tuple(branches), orelse)

    def elif_clause(self, c):
        return ("elif", c[0], c[1])

    def else_clause(self, c):
        return ("else", c[0])

    def for_stmt(self, c):
        return ast.For(_pos(c[0]), str(c[1]), c[2], c[3])

    def repeat_stmt(self, c):
        return ast.Repeat(_pos(c[0]), _int_literal(c[1]), c[2])

    def while_stmt(self, c):
        return ast.While(_pos(c[0]), c[1], _int_literal(c[2]), c[3])

    def resample(self, c):
        return ast.Resample(_pos(c[0]), c[1], c[2], _int_literal(c[3]))

    def sample(self, c):
        return ast.Sample(_pos(c[0]), c[1], _int_literal(c[2]))

    def spawn(self, c):
        return ast.Spawn(_pos(c[0]), c[1])

    def test(self, c):
        return _fold_chain(c)

    def paren(self, c):
        return c[1]

    def neg(self, c):
        return ast.Unary(_pos(c[0]), "-", c[1])

    def field(self, c):
        return ast.Field(_pos(c[0]), c[0], str(c[1]), _pos(c[1]))

    def index(self, c):
        return ast.Index(_pos(c[0]), c[0], c[2])

    def call(self, c):
        # `f()` leaves a None placeholder for the absent arguments.
        name, rest = c[0], [x for x in c[1:] if x is not None and not isinstance(x, Token)]
        args: list[ast.Expr] = []
        kwargs: list[ast.Keyword] = []
        for kind, value in rest[0] if rest else []:
            if kind == "positional" and kwargs:
                raise _SyntaxProblem(value.pos, "positional argument after a keyword argument")
            (args if kind == "positional" else kwargs).append(value)
        return ast.Call(_pos(name), str(name), tuple(args), tuple(kwargs))

    def arguments(self, c):
        return c

    def positional(self, c):
        return ("positional", c[0])

    def keyword(self, c):
        return ("keyword", ast.Keyword(str(c[0]), c[1], _pos(c[0])))

    def var(self, c):
        return ast.Var(_pos(c[0]), str(c[0]))

    def list(self, c):
        items = tuple(x for x in c if not isinstance(x, Token) and x is not None)
        return ast.ListExpr(_pos(c[0]), items)

    def record(self, c):
        return ast.RecordExpr(_pos(c[0]), tuple(x for x in c if isinstance(x, tuple)))

    def entry(self, c):
        key = str(c[0])
        if c[0].type == "STRING":
            key = _string_value(c[0])
        return (key, c[1])

    def string(self, c):
        return ast.Literal(_pos(c[0]), _string_value(c[0]))

    def integer(self, c):
        return ast.Literal(_pos(c[0]), _int_literal(c[0]))

    def number(self, c):
        value = float(c[0])
        if math.isinf(value):
            raise _SyntaxProblem(_pos(c[0]), f"number {c[0]} is too large")
        return ast.Literal(_pos(c[0]), value)

    def true(self, c):
        return ast.Literal(_pos(c[0]), True)

    def false(self, c):
        return ast.Literal(_pos(c[0]), False)

    def null(self, c):
        return ast.Literal(_pos(c[0]), None)


# Binding strength of binary operators; `not` binds between `and` and comparisons.
_PRECEDENCE = {
    "or": 1, "and": 2,
    "==": 4, "!=": 4, "<": 4, "<=": 4, ">": 4, ">=": 4, "in": 4,
    "+": 5, "-": 5, "*": 6, "/": 6, "%": 6,
}  # fmt: skip
_NOT_PRECEDENCE = 3


def _fold_chain(items: list) -> ast.Expr:
    """Fold `[not]* operand (op [not]* operand)*` into a tree by precedence climbing.

    Operators of one level associate to the left; `not x == y` is `not (x == y)`.
    """
    pos = 0

    def operand() -> ast.Expr:
        nonlocal pos
        item = items[pos]
        pos += 1
        if isinstance(item, Token) and item.type == "NOT":
            return ast.Unary(item.start_pos or 0, "not", expression(_NOT_PRECEDENCE + 1))
        return item

    def expression(min_precedence: int) -> ast.Expr:
        nonlocal pos
        left = operand()
        while pos < len(items):
            op = str(items[pos])
            precedence = _PRECEDENCE[op]
            if precedence < min_precedence:
                break
            op_pos = items[pos].start_pos or 0
            pos += 1
            right = expression(precedence + 1)
            # and/or point at their left operand, other operators at themselves.
            left = ast.Binary(left.pos if op in ("and", "or") else op_pos, op, left, right)
        return left

    return expression(1)


Locate = Callable[[int], Span]


def parse_flow(text: str, locate: Locate, source_line: Callable[[int], str | None]) -> ast.Program:
    """Parse `text`; `locate(offset)` gives the file position of a character of it."""

    def fail(offset: int, message: str, hint: str | None = None) -> SpecError:
        span = locate(offset)
        return SpecError([Diagnostic("error", message, span, hint, source_line(span.line))])

    if len(text) > MAX_FLOW_CHARS:
        raise fail(0, f"flow is longer than {MAX_FLOW_CHARS} characters")
    source = text if text.endswith("\n") else text + "\n"
    try:
        return _parser().parse(source)
    except UnexpectedCharacters as exc:
        char = source[exc.pos_in_stream]
        if char in "'\"":  # a quote that the STRING pattern could not close on its line
            raise fail(exc.pos_in_stream, "unterminated string in flow") from None
        raise fail(exc.pos_in_stream, f"unexpected character {char!r} in flow") from None
    except UnexpectedToken as exc:
        raise _token_error(exc, source, fail, locate) from None
    except UnexpectedEOF as exc:
        raise fail(len(text), f"flow ends early; expected {_expected(exc.expected)}") from None
    except DedentError:
        raise fail(
            _dedent_offset(source), "unindent does not match any outer indentation level"
        ) from None
    except UnexpectedInput as exc:  # any other lark input error
        raise fail(getattr(exc, "pos_in_stream", 0) or 0, f"invalid flow: {exc}") from None
    except _SyntaxProblem as exc:  # raised by the transformer while parsing
        raise fail(exc.pos, exc.message) from None
    except RecursionError:
        raise fail(0, "flow nests too deeply") from None


def _token_error(exc: UnexpectedToken, source: str, fail, locate: Locate) -> SpecError:
    token = exc.token
    expected = _expected(exc.expected)
    opener = _unclosed_bracket(source, token.start_pos or 0)
    if opener is not None and token.type != "$END" and "\n" in source[opener : token.start_pos]:
        # A bracket left open runs the next lines into this one.
        span = locate(opener)
        where = f"line {span.line}, column {span.col}"
        message = f"unexpected {str(token)!r}; expected {expected}"
        return fail(token.start_pos or 0, message, f"is the '{source[opener]}' at {where} closed?")
    if token.type == "$END":
        return fail(len(source.rstrip("\n")), f"flow ends early; expected {expected}")
    if token.type == "_INDENT":
        return fail(token.end_pos or 0, "unexpected indent")
    if _follows_colon(source, token.start_pos or 0) and exc.expected & {"_NL", "_INDENT"}:
        return fail(token.start_pos or 0, "expected an indented block after ':'")
    if token.type == "_DEDENT":
        return fail(token.start_pos or 0, f"block ends early; expected {expected}")
    if token.type == "_NL":
        offset = token.start_pos or 0
        return fail(offset, f"line ends early; expected {expected}")
    shown = str(token)
    hint = None
    if shown == "=" and "BINOP" in exc.expected:
        hint = "use '==' to compare"
    return fail(token.start_pos or 0, f"unexpected {shown!r}; expected {expected}", hint)


def _expected(names) -> str:
    names = set(names)
    summary = []
    if len(names & _EXPRESSION_START) >= 6:
        names -= _EXPRESSION_START
        summary.append("an expression")
    if len(names & _OPERATORS) >= 3:
        names -= _OPERATORS
        summary.append("an operator")
    readable = summary + sorted({_TOKEN_NAMES.get(n, _keyword(n)) for n in names})
    if len(readable) > 6:
        readable = readable[:6] + ["..."]
    return ", ".join(readable) if readable else "something else"


def _keyword(terminal: str) -> str:
    # Anonymous keyword terminals are named after their text (e.g. "MAX" for "max").
    return f"'{terminal.lower()}'"


def _unclosed_bracket(source: str, offset: int) -> int | None:
    """The offset of the innermost bracket still open at `offset`, if any."""
    stack: list[int] = []
    for token in _BRACKETS.finditer(source, 0, offset):
        text = token.group()
        if text in "([{":
            stack.append(token.start())
        elif text in ")]}" and stack:
            stack.pop()
    return stack[-1] if stack else None


# Brackets, skipping strings and comments (which may contain brackets).
_BRACKETS = re.compile(r"\"(?:[^\"\\\n]|\\.)*\"|'(?:[^'\\\n]|\\.)*'|#[^\n]*|[()\[\]{}]")


def _follows_colon(source: str, offset: int) -> bool:
    """Whether the code before `offset` (skipping blank lines and comments) ends with ':'."""
    before = source[:offset]
    lines = [re.sub(r"#.*", "", line).rstrip() for line in before.split("\n")[:-1]]
    code = [line for line in lines if line]
    return bool(code) and code[-1].endswith(":")


def _dedent_offset(source: str) -> int:
    """The first line whose indentation matches no enclosing block."""
    levels = [0]
    offset = 0
    for line in source.split("\n"):
        stripped = line.lstrip(" \t")
        if stripped and not stripped.startswith("#"):
            indent = len(line) - len(stripped)
            if indent > levels[-1]:
                levels.append(indent)
            else:
                while indent < levels[-1]:
                    levels.pop()
                if indent != levels[-1]:
                    return offset + indent
        offset += len(line) + 1
    return 0
