"""The Jinja2 sandbox prompts render in, with what a template may build bounded.

Specs are untrusted. Jinja's `SandboxedEnvironment` keeps templates away from
Python internals, but not from resource exhaustion: `{{ question * 10**9 }}`
builds a gigabyte-sized prompt, a doubling loop over a namespace
(`{% set ns.s = ns.s ~ ns.s %}`) an unbounded one, `{{ 10 ** 10**8 }}` computes
for minutes, and `center(10**9)`, `'%0999999999d' % 1` or `replace('', ...)`
allocate gigabytes at once. `BoundedSandbox` refuses each of those past
MAX_VALUE_SIZE (a SecurityError naming the operation), checks every call's and
filter's result, and `render_bounded` stops a rendering whose output passes the
limit. Not bounded: the iterations of nested loops that print nothing (each
`range` is at most 100,000).
"""

from __future__ import annotations

import functools
import operator
import re
import string
from collections.abc import Callable
from typing import Any

from jinja2 import Template, nodes
from jinja2.compiler import CodeGenerator, Frame
from jinja2.exceptions import SecurityError
from jinja2.sandbox import SandboxedEnvironment

from hive.compiler.types import MAX_VALUE_SIZE

# A printf-style field's width and precision ('%08.3f', '%*d').
_PERCENT_FIELD = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(\*|\d+)?(?:\.(\*|\d+))?")
_WIDTH_METHODS = frozenset({"center", "ljust", "rjust", "zfill", "expandtabs"})
_WIDTH_FILTERS = frozenset({"center", "indent"})


def _check_size(value: Any, what: str) -> Any:
    if isinstance(value, str | list | tuple | dict) and len(value) > MAX_VALUE_SIZE:
        raise SecurityError(
            f"{what} made {len(value):,} characters or items; the limit is {MAX_VALUE_SIZE:,}"
        )
    return value


def _check_widths(what: str, args: tuple, kwargs: dict) -> None:
    """Refuse a width argument (of `center`, `ljust`, `indent`, ...) over the limit before
    the call allocates it."""
    for arg in (*args, *kwargs.values()):
        if isinstance(arg, int) and arg > MAX_VALUE_SIZE:
            raise SecurityError(f"{what}: width {arg:,} is over the limit of {MAX_VALUE_SIZE:,}")


def _huge_width(what: str) -> SecurityError:
    return SecurityError(f"{what}: a format width over the limit of {MAX_VALUE_SIZE:,}")


def _huge_int(values: Any) -> bool:
    items = values if isinstance(values, tuple | list) else (values,)
    return any(isinstance(v, int) and v > MAX_VALUE_SIZE for v in items)


def _check_percent(fmt: Any, values: Any, what: str) -> None:
    """`fmt % values` would not pad a field to a million characters and more."""
    if not isinstance(fmt, str):
        return
    star = False
    for match in _PERCENT_FIELD.finditer(fmt):
        for group in match.groups():
            star |= group == "*"
            if group and group != "*" and int(group) > MAX_VALUE_SIZE:
                raise _huge_width(what)
    if star and _huge_int(values):  # '%*d': the width is an argument
        raise _huge_width(what)


def _check_braces(fmt: str, args: tuple, kwargs: dict, what: str) -> None:
    """`fmt.format(...)` would not pad a field to a million characters and more."""
    try:
        fields = list(string.Formatter().parse(fmt))
    except ValueError:
        return  # malformed: format() itself says why
    for _, _, spec, _ in fields:
        if not spec:
            continue
        if any(int(n) > MAX_VALUE_SIZE for n in re.findall(r"\d+", spec)):
            raise _huge_width(what)
        if "{" in spec and (_huge_int(args) or _huge_int(tuple(kwargs.values()))):
            raise _huge_width(what)  # '{:>{w}}': the width is an argument


def _check_replace(text: str, args: tuple) -> None:
    if len(args) >= 2 and isinstance(args[0], str) and isinstance(args[1], str):
        old, new = args[0], args[1]
        copies = len(text) + 1 if not old else text.count(old)
        if len(text) + copies * len(new) > MAX_VALUE_SIZE:
            raise SecurityError(f"replace() would make over {MAX_VALUE_SIZE:,} characters")


class _BoundedCodeGenerator(CodeGenerator):
    """Compiles `~` (string concatenation) to the environment's bounded join: in a
    loop over a namespace (`{% set ns.s = ns.s ~ ns.s %}`) it doubles a string per step."""

    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:
        self.write("environment.bounded_concat((")
        for arg in node.nodes:
            self.visit(arg, frame)
            self.write(", ")
        self.write("))")


class BoundedSandbox(SandboxedEnvironment):
    """Jinja's sandbox with the bounds of this module's docstring: `*`, `**`, `+`, `%`
    and `~` (through the code generator) checked before they build a value, filters
    and calls (string methods included) checked on their width arguments and result."""

    code_generator_class = _BoundedCodeGenerator
    intercepted_binops = frozenset({"*", "**", "+", "%"})

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.filters = {name: self._bounded_filter(name, f) for name, f in self.filters.items()}

    def _bounded_filter(self, name: str, function: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(function)  # keeps Jinja's pass_context / pass_environment marks
        def bounded(*args: Any, **kwargs: Any) -> Any:
            if name in _WIDTH_FILTERS:
                _check_widths(f"'{name}'", args, kwargs)
            strings = [a for a in args if isinstance(a, str)]  # after any context argument
            if name == "format" and strings:  # printf style: value % args
                _check_percent(strings[0], args[args.index(strings[0]) + 1 :], "'format'")
            if name == "replace" and len(strings) >= 3:
                _check_replace(strings[0], tuple(strings[1:]))
            return _check_size(function(*args, **kwargs), f"'{name}'")

        return bounded

    def bounded_concat(self, values: tuple[Any, ...]) -> str:
        parts = [str(v) for v in values]
        total = sum(map(len, parts))
        if total > MAX_VALUE_SIZE:
            raise SecurityError(
                f"'~' would make {total:,} characters; the limit is {MAX_VALUE_SIZE:,}"
            )
        return "".join(parts)

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        """`'{:>9}'.format` as the template reads it: the sandbox's, with widths checked."""
        wrapped = super().wrap_str_format(value)
        if wrapped is None:
            return None
        fmt = value.__self__

        def checked(*args: Any, **kwargs: Any) -> str:
            mapping = args[0] if value.__name__ == "format_map" and args else {}
            values = tuple(mapping.values()) if isinstance(mapping, dict) else ()
            _check_braces(fmt, args + values, kwargs, f"{value.__name__}()")
            return _check_size(wrapped(*args, **kwargs), f"{value.__name__}()")

        return checked

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N805
        name = getattr(__obj, "__name__", "a call")
        owner = getattr(__obj, "__self__", None)
        if isinstance(owner, str):  # a string method
            if name in _WIDTH_METHODS:
                _check_widths(f"{name}()", args, kwargs)
            if name == "replace":
                _check_replace(owner, args)
        return _check_size(super().call(__context, __obj, *args, **kwargs), f"{name}()")

    def call_binop(self, context: Any, operator_name: str, left: Any, right: Any) -> Any:
        if operator_name == "*":
            integers = isinstance(left, int) and isinstance(right, int)
            if integers and left.bit_length() + right.bit_length() > MAX_VALUE_SIZE:
                raise SecurityError("'*' result too large")
            for seq, count in ((left, right), (right, left)):
                sized = isinstance(seq, str | list | tuple) and isinstance(count, int)
                if sized and len(seq) * count > MAX_VALUE_SIZE:
                    raise SecurityError(
                        f"'*' would make {len(seq) * count:,} characters or items; "
                        f"the limit is {MAX_VALUE_SIZE:,}"
                    )
            return operator.mul(left, right)
        if operator_name == "+":
            sized = isinstance(left, str | list | tuple) and isinstance(right, str | list | tuple)
            if sized and len(left) + len(right) > MAX_VALUE_SIZE:
                raise SecurityError(
                    f"'+' would make {len(left) + len(right):,} characters or items; "
                    f"the limit is {MAX_VALUE_SIZE:,}"
                )
            return operator.add(left, right)
        if operator_name == "%":
            _check_percent(left, right, "'%'")
            return _check_size(operator.mod(left, right), "'%'")
        integers = isinstance(left, int) and isinstance(right, int) and right > 0
        if integers and max(left.bit_length(), 1) * right > MAX_VALUE_SIZE:
            raise SecurityError(f"'**' result too large: {left} ** {right}")
        return operator.pow(left, right)


def render_bounded(template: Template, context: dict[str, Any]) -> str:
    """`template.render(context)`, stopped once its output passes MAX_VALUE_SIZE
    characters (a loop printing a long value many times)."""
    parts: list[str] = []
    total = 0
    for chunk in template.generate(context):
        total += len(chunk)
        if total > MAX_VALUE_SIZE:
            raise SecurityError(f"the rendered prompt passed {MAX_VALUE_SIZE:,} characters")
        parts.append(chunk)
    return "".join(parts)
