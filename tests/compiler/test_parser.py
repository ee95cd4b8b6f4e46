"""The flow grammar: precedence, layout, literals and exact error positions."""

from __future__ import annotations

import pytest

from hive.compiler import ast
from hive.compiler.errors import Span, SpecError
from hive.compiler.parser import parse_flow


def parse(text: str) -> ast.Program:
    return parse_flow(text, lambda offset: Span("f", 1, offset + 1), lambda line: None)


def expr(text: str) -> ast.Expr:
    (stmt,) = parse(f"x = {text}").body
    return stmt.value


def show(e: ast.Expr) -> str:
    match e:
        case ast.Binary(op=op, left=left, right=right):
            return f"({show(left)} {op} {show(right)})"
        case ast.Unary(op=op, operand=operand):
            return f"({op} {show(operand)})"
        case ast.Var(name=name):
            return name
        case ast.Literal(value=value):
            return repr(value)
        case ast.Field(value=value, name=name):
            return f"{show(value)}.{name}"
        case ast.Call(name=name, args=args, kwargs=kwargs):
            parts = [show(a) for a in args] + [f"{k.name}={show(k.value)}" for k in kwargs]
            return f"{name}({', '.join(parts)})"
    return type(e).__name__


@pytest.mark.parametrize(
    "source, tree",
    [
        ("a + b * c - d", "((a + (b * c)) - d)"),
        ("a - b - c", "((a - b) - c)"),
        ("-a * b", "((- a) * b)"),
        ("not a == b and c", "((not (a == b)) and c)"),
        ("a or b and not c", "(a or (b and (not c)))"),
        ("a < b + 1 or x in xs", "((a < (b + 1)) or (x in xs))"),
        ("f(a, k=b.c).d", "f(a, k=b.c).d"),
        ("(a or b) and c", "((a or b) and c)"),
        ("1.5e3 + 2", "(1500.0 + 2)"),
    ],
)
def test_precedence(source, tree):
    assert show(expr(source)) == tree


def test_literals_and_escapes():
    assert expr(r'"a\nb"').value == "a\nb"
    assert expr("'it\\'s'").value == "it's"
    assert [expr(v).value for v in ("true", "false", "null", "007")] == [True, False, None, 7]
    record = expr('{a: 1, "b c": [1, 2,], }')
    assert [k for k, _ in record.entries] == ["a", "b c"]


def test_blocks_comments_and_multiline_calls():
    program = parse(
        "# leading comment\n"
        "x = f(a,\n"
        "      b)   # trailing comment\n"
        "if x:\n"
        "    # comment inside\n"
        "    y = 1\n"
        "elif z:\n"
        "    y = 2\n"
        "else:\n"
        "    y = 3\n"
        "\n"
        "while y < 3 max 4:\n"
        "    y = y + 1\n"
        "return y\n"
    )
    kinds = [type(s).__name__ for s in program.body]
    assert kinds == ["Assign", "If", "While", "Return"]
    assert len(program.body[1].branches) == 2 and program.body[1].orelse
    assert program.body[2].max_iterations == 4


def test_combinator_syntax():
    (s, r, h) = parse(
        "s = sample a(q) x 8\nr = resample a(q) until _.ok max 3\nh = spawn a(q)"
    ).body
    assert isinstance(s.value, ast.Sample) and s.value.n == 8
    assert isinstance(r.value, ast.Resample) and r.value.max_attempts == 3
    assert isinstance(h.value, ast.Spawn)


def test_keywords_do_not_steal_names():
    # `x`, `max`, `until` are keywords only where the grammar expects them.
    (stmt,) = parse("x = sample f(x, max=until) x 2").body
    assert stmt.name == "x" and stmt.value.call.kwargs[0].name == "max"


@pytest.mark.parametrize(
    "source, col, message",
    [
        ("x = a $ b", 7, "unexpected character '$'"),
        ("x = f(a b)", 9, "unexpected 'b'"),
        ("if x = 1:\n  y = 2", 6, "unexpected '='"),
        ("x = sample f() x", 17, "expected an integer"),
        ("return", 7, "expected an expression"),
        ("x = (1", 7, "flow ends early"),
    ],
)
def test_syntax_errors_have_exact_columns(source, col, message):
    with pytest.raises(SpecError) as info:
        parse(source)
    (d,) = info.value.diagnostics
    assert d.span.col == col
    assert message in d.message


def test_missing_block_and_bad_indent():
    with pytest.raises(SpecError, match="expected an indented block after ':'"):
        parse("if x:\ny = 1")
    with pytest.raises(SpecError, match="unindent does not match"):
        parse("if x:\n    y = 1\n  z = 2")
    with pytest.raises(SpecError, match="unexpected indent"):
        parse("x = 1\n    y = 2")


def test_comparison_hint():
    with pytest.raises(SpecError) as info:
        parse("if a = b:\n  y = 1")
    assert info.value.diagnostics[0].hint == "use '==' to compare"
