"""Parse flow text into the syntax tree, with errors located in the spec file.

One LALR parser is built from `flow.lark` and cached. Lark's exceptions are
turned into `SpecError`s at this boundary: the offset of the bad token is
mapped back into the YAML/JSON file by the caller's `locate` function.
"""

from __future__ import annotations

import ast as pyast
import re
from collections.abc import Callable
from functools import cache
from importlib.resources import files

from lark import Lark, Token, Transformer, Tree, v_args
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken
from lark.indenter import DedentError, Indenter

from hive.compiler import ast
from hive.compiler.errors import Diagnostic, Span, SpecError

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
    "COMP_OP": "a comparison",
    "ADD_OP": "'+' or '-'",
    "MUL_OP": "'*', '/' or '%'",
    "$END": "the end of the flow",
    "MINUS": "'-'",
}

# When Lark expects most of these, say "an expression" instead of listing them.
_EXPRESSION_START = {
    "NAME", "INT", "FLOAT", "STRING", "LPAR", "LSQB", "LBRACE", "MINUS", "_NOT",
    "TRUE", "FALSE", "NULL", "SAMPLE", "SPAWN", "RESAMPLE",
}
_OPERATORS = {"COMP_OP", "ADD_OP", "MUL_OP", "_AND", "_OR", "DOT", "LSQB", "LPAR"}


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
    return Lark(grammar, parser="lalr", postlex=_FlowIndenter(), propagate_positions=True)


def _pos(item: Tree | Token) -> int:
    if isinstance(item, Token):
        return item.start_pos or 0
    return item.meta.start_pos if not item.meta.empty else 0


@v_args(meta=True)
class _ToAst(Transformer):
    """Lark tree -> `hive.compiler.ast`. Each method gets the rule's children."""

    def start(self, meta, stmts):
        return ast.Program(tuple(stmts))

    def assign(self, meta, c):
        return ast.Assign(meta.start_pos, str(c[0]), c[1])

    def return_stmt(self, meta, c):
        return ast.Return(meta.start_pos, c[0])

    def expr_stmt(self, meta, c):
        return ast.ExprStmt(meta.start_pos, c[0])

    def suite(self, meta, stmts):
        return tuple(stmts)

    def if_stmt(self, meta, c):
        branches = [(c[0], c[1])]
        orelse: tuple = ()
        for clause in c[2:]:
            if clause[0] == "elif":
                branches.append((clause[1], clause[2]))
            else:
                orelse = clause[1]
        return ast.If(meta.start_pos, tuple(branches), orelse)

    def elif_clause(self, meta, c):
        return ("elif", c[0], c[1])

    def else_clause(self, meta, c):
        return ("else", c[0])

    def for_stmt(self, meta, c):
        return ast.For(meta.start_pos, str(c[0]), c[1], c[2])

    def repeat_stmt(self, meta, c):
        return ast.Repeat(meta.start_pos, int(c[0]), c[1])

    def while_stmt(self, meta, c):
        return ast.While(meta.start_pos, c[0], int(c[1]), c[2])

    def resample(self, meta, c):
        return ast.Resample(meta.start_pos, c[0], c[1], int(c[2]))

    def sample(self, meta, c):
        return ast.Sample(meta.start_pos, c[0], int(c[1]))

    def spawn(self, meta, c):
        return ast.Spawn(meta.start_pos, c[0])

    def or_expr(self, meta, c):
        return self._fold(meta, "or", c)

    def and_expr(self, meta, c):
        return self._fold(meta, "and", c)

    @staticmethod
    def _fold(meta, op, operands):
        result = operands[0]
        for right in operands[1:]:
            result = ast.Binary(meta.start_pos, op, result, right)
        return result

    def not_(self, meta, c):
        return ast.Unary(meta.start_pos, "not", c[0])

    def neg(self, meta, c):
        return ast.Unary(meta.start_pos, "-", c[0])

    def comparison(self, meta, c):
        return ast.Binary(_pos(c[1]), str(c[1]), c[0], c[2])

    sum = comparison
    product = comparison

    def field(self, meta, c):
        return ast.Field(meta.start_pos, c[0], str(c[1]), _pos(c[1]))

    def index(self, meta, c):
        return ast.Index(meta.start_pos, c[0], c[2])

    def call(self, meta, c):
        name, rest = c[0], [x for x in c[1:] if not isinstance(x, Token)]
        args: list[ast.Expr] = []
        kwargs: list[ast.Keyword] = []
        for kind, value in rest[0] if rest else []:
            (args if kind == "positional" else kwargs).append(value)
        return ast.Call(meta.start_pos, str(name), tuple(args), tuple(kwargs))

    def arguments(self, meta, c):
        return c

    def positional(self, meta, c):
        return ("positional", c[0])

    def keyword(self, meta, c):
        return ("keyword", ast.Keyword(str(c[0]), c[1], _pos(c[0])))

    def var(self, meta, c):
        return ast.Var(meta.start_pos, str(c[0]))

    def list(self, meta, c):
        return ast.ListExpr(meta.start_pos, tuple(x for x in c if not isinstance(x, Token) and x is not None))

    def record(self, meta, c):
        return ast.RecordExpr(meta.start_pos, tuple(x for x in c if isinstance(x, tuple)))

    def entry(self, meta, c):
        key = str(c[0])
        if c[0].type == "STRING":
            key = pyast.literal_eval(key)
        return (key, c[1])

    def string(self, meta, c):
        return ast.Literal(meta.start_pos, pyast.literal_eval(str(c[0])))

    def integer(self, meta, c):
        return ast.Literal(meta.start_pos, int(c[0]))

    def number(self, meta, c):
        return ast.Literal(meta.start_pos, float(c[0]))

    def true(self, meta, c):
        return ast.Literal(meta.start_pos, True)

    def false(self, meta, c):
        return ast.Literal(meta.start_pos, False)

    def null(self, meta, c):
        return ast.Literal(meta.start_pos, None)


Locate = Callable[[int], Span]


def parse_flow(text: str, locate: Locate, source_line: Callable[[int], str | None]) -> ast.Program:
    """Parse `text`; `locate(offset)` gives the file position of a character of it."""

    def fail(offset: int, message: str, hint: str | None = None) -> SpecError:
        span = locate(offset)
        return SpecError([Diagnostic("error", message, span, hint, source_line(span.line))])

    if len(text) > MAX_FLOW_CHARS:
        return _raise(fail(0, f"flow is longer than {MAX_FLOW_CHARS} characters"))
    source = text if text.endswith("\n") else text + "\n"
    try:
        tree = _parser().parse(source)
    except UnexpectedCharacters as exc:
        raise fail(exc.pos_in_stream, f"unexpected character {text[exc.pos_in_stream]!r} in flow") from None
    except UnexpectedToken as exc:
        raise _token_error(exc, source, fail) from None
    except UnexpectedEOF as exc:
        raise fail(len(text), f"flow ends early; expected {_expected(exc.expected)}") from None
    except DedentError:
        raise fail(_dedent_offset(source), "unindent does not match any outer indentation level") from None
    except UnexpectedInput as exc:  # any other lark input error
        raise fail(getattr(exc, "pos_in_stream", 0) or 0, f"invalid flow: {exc}") from None
    except RecursionError:
        raise fail(0, "flow nests too deeply") from None
    try:
        return _ToAst().transform(tree)
    except RecursionError:
        raise fail(0, "flow nests too deeply") from None


def _raise(error: SpecError):
    raise error


def _token_error(exc: UnexpectedToken, source: str, fail) -> SpecError:
    token = exc.token
    expected = _expected(exc.expected)
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
    if shown == "=" and "COMP_OP" in exc.expected:
        hint = "use '==' to compare"
    return fail(token.start_pos or 0, f"unexpected {shown!r}; expected {expected}", hint)


def _expected(names) -> str:
    names = set(names)
    summary = []
    if len(names & _EXPRESSION_START) >= 6:
        names -= _EXPRESSION_START
        summary.append("an expression")
    if len(names & _OPERATORS) >= 4:
        names -= _OPERATORS
        summary.append("an operator")
    readable = summary + sorted({_TOKEN_NAMES.get(n, _keyword(n)) for n in names})
    if len(readable) > 6:
        readable = readable[:6] + ["..."]
    return ", ".join(readable) if readable else "something else"


def _keyword(terminal: str) -> str:
    # Anonymous keyword terminals are named after their text (e.g. "MAX" for "max").
    return f"'{terminal.lower()}'"


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
