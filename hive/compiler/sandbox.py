"""The Jinja2 sandbox prompts render in, with what a template may build bounded.

Specs are untrusted. Jinja's `SandboxedEnvironment` keeps templates away from
Python internals, but not from resource exhaustion: `{{ question * 10**9 }}`
builds a gigabyte-sized prompt, a doubling loop over a namespace
(`{% set ns.s = ns.s ~ ns.s %}`) or `l.extend(l)` an unbounded one, nested
literals (`[a, a, a]`) grow as fast, `{{ 10 ** 10**8 }}` computes for minutes,
and `center(10**9)`, `'%0999999999d' % 1` or `replace('', ...)` allocate
gigabytes at once. `BoundedSandbox` is Jinja's immutable sandbox (no `append`,
`extend` or `update`; no `str.encode` or `lipsum`) that refuses each of those past
MAX_VALUE_SIZE characters or items, counted deep as they print (`value_size`:
`[s] * 1000` holds s a thousand times, a number its digits), with a SecurityError
naming the operation: before the operation where its size can be told in advance
(`*`, `+`, `~`, `%` and `format()` widths, totals and repeats, width and count
arguments, `indent`, `expandtabs`, `replace`, `translate`, `join`, `tojson`,
`wordwrap`, literals, block buffers, every printed value), and on the result of
every other call and filter. `render_bounded` stops a rendering whose output passes
the limit.

Time is bounded by steps: `render_bounded` allows MAX_TEMPLATE_STEPS loop
iterations and calls (macros, methods, functions) per rendering, so nested loops
that print nothing (each `range` is at most 100,000) and self-recursive macros
(`f(n-1)` twice per call: 2^n calls within Python's depth) stop with a message.
Not bounded: an operation checked only on its result allocates it first (at most a
product of two values within the limit), and filters are not steps (each is
bounded by the sizes above).
"""

from __future__ import annotations

import functools
import operator
import re
import string
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any

from jinja2 import Environment, Template, nodes
from jinja2.compiler import CodeGenerator, Frame
from jinja2.exceptions import SecurityError
from jinja2.nodes import EvalContext
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment

from hive.compiler.types import MAX_VALUE_SIZE, value_size

MAX_TEMPLATE_STEPS = 1_000_000  # loop iterations and calls in one rendering
# The steps left to the rendering in progress (render_bounded sets it; a list to
# count down in place). None: no rendering is bounded here (templates are only
# rendered through render_bounded).
_steps_left: ContextVar[list[int] | None] = ContextVar("template_steps_left", default=None)


def _step() -> None:
    left = _steps_left.get()
    if left is not None:
        left[0] -= 1
        if left[0] < 0:
            raise SecurityError("the template ran over its budget of loop iterations and calls")


# A printf-style field's width and precision ('%08.3f', '%*d').
_PERCENT_FIELD = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(\*|\d+)?(?:\.(\*|\d+))?[a-zA-Z%]")
_WIDTH_METHODS = frozenset({"center", "ljust", "rjust", "zfill", "expandtabs"})
# Filters whose integer arguments are a size they allocate: a width, or a count of items.
_WIDTH_FILTERS = frozenset({"center", "indent", "batch", "slice"})


def _check_size(value: Any, what: str) -> Any:
    size = value_size(value)
    if size > MAX_VALUE_SIZE:
        raise SecurityError(f"{what} made over {MAX_VALUE_SIZE:,} characters or items (the limit)")
    return value


def _check_widths(what: str, args: tuple, kwargs: dict) -> None:
    """Refuse a width argument (of `center`, `ljust`, `indent`, ...) over the limit before
    the call allocates it."""
    for arg in (*args, *kwargs.values()):
        if isinstance(arg, int) and arg > MAX_VALUE_SIZE:
            raise SecurityError(f"{what}: width {arg:,} is over the limit of {MAX_VALUE_SIZE:,}")


def _huge_width(what: str) -> SecurityError:
    return SecurityError(f"{what}: a format width over the limit of {MAX_VALUE_SIZE:,}")


def _is_huge(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > MAX_VALUE_SIZE


def _holds_huge(value: Any) -> bool:
    """Whether `value` is, or a container in it holds, an integer over the limit."""
    stack, steps = [value], 0
    while stack and steps <= MAX_VALUE_SIZE:
        item = stack.pop()
        steps += 1
        if _is_huge(item):
            return True
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list | tuple):
            stack.extend(item)
    return False


def _check_percent(fmt: Any, values: Any, what: str) -> None:
    """`fmt % values` would not pad a field to a million characters and more: literal
    widths and precisions, and the arguments a `*` takes."""
    if not isinstance(fmt, str):
        return
    args = values if isinstance(values, tuple) else (values,)
    index = 0  # the next positional argument
    total = 0  # the fields' widths together ('%0999999d' * 5 pads five times)
    for match in _PERCENT_FIELD.finditer(fmt):
        if match.group().endswith("%") and len(match.group()) == 2:
            continue  # '%%'
        for group in match.groups():
            if group == "*":
                if index < len(args) and _is_huge(args[index]):
                    raise _huge_width(what)
                if index < len(args) and isinstance(args[index], int):
                    total += args[index]
                index += 1
            elif group:
                total += int(group)
        index += 1  # the value itself
        if total > MAX_VALUE_SIZE:
            raise _huge_width(what)


def _check_braces(fmt: str, args: tuple, kwargs: dict, what: str) -> None:
    """`fmt.format(...)` would not pad a field to a million characters and more: literal
    widths, and the arguments that nested fields (`{:>{w}}`, `{:{0}}`) take."""
    try:
        fields = list(string.Formatter().parse(fmt))
    except ValueError:
        return  # malformed: format() itself says why
    total = 0  # the fields' widths together
    for _, _, spec, _ in fields:
        if not spec:
            continue
        total += sum(int(n) for n in re.findall(r"\d+", spec))
        if total > MAX_VALUE_SIZE:
            raise _huge_width(what)
        for name in re.findall(r"\{([^{}]*)\}", spec):
            key = re.split(r"[.\[]", name, maxsplit=1)[0]
            if not key:  # '{}': automatic numbering; check every positional argument
                if any(_holds_huge(a) for a in args):
                    raise _huge_width(what)
                continue
            ref = args[int(key)] if key.isdigit() and int(key) < len(args) else kwargs.get(key)
            if _holds_huge(ref):  # the width, or a container an index reaches into ({1[0]})
                raise _huge_width(what)


def _check_replace(text: str, args: tuple) -> None:
    """`text.replace(old, new[, count])` stays within the limit."""
    if len(args) >= 2 and isinstance(args[0], str) and isinstance(args[1], str):
        old, new = args[0], args[1]
        copies = len(text) + 1 if not old else text.count(old)
        if len(args) >= 3 and isinstance(args[2], int) and args[2] >= 0:
            copies = min(copies, args[2])
        if len(text) + copies * (len(new) - len(old)) > MAX_VALUE_SIZE:
            raise SecurityError(f"replace() would make over {MAX_VALUE_SIZE:,} characters")


class _BoundedBuffer(list):
    """What a block (`{% set x %}...{% endset %}`, a macro's body, `{% filter %}`) prints
    into before it is joined: bounded like a rendered prompt."""

    def __init__(self) -> None:
        super().__init__()
        self.size = 0

    def _count(self, parts: Any) -> None:
        self.size += sum(len(p) for p in parts if isinstance(p, str))
        if self.size > MAX_VALUE_SIZE:
            raise SecurityError(f"a block printed over {MAX_VALUE_SIZE:,} characters")

    def append(self, part: Any) -> None:
        self._count((part,))
        super().append(part)

    def extend(self, parts: Any) -> None:
        parts = tuple(parts)
        self._count(parts)
        super().extend(parts)


class _BoundedCodeGenerator(CodeGenerator):
    """Routes what Jinja's own code builds through the environment's checks: `~`
    (string concatenation: a doubling loop over a namespace, `{% set ns.s = ns.s ~
    ns.s %}`), list, dict and tuple literals (`[l, l, l]` nested grows a value as fast),
    and block buffers. Our environments do not autoescape, so `~` needs no Markup."""

    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:
        self.write("environment.bounded_concat((")
        for arg in node.nodes:
            self.visit(arg, frame)
            self.write(", ")
        self.write("))")

    def _checked(self, visit: Callable[[], None]) -> None:
        self.write("environment.checked_literal(")
        visit()
        self.write(")")

    def visit_List(self, node: nodes.List, frame: Frame) -> None:
        self._checked(lambda: super(_BoundedCodeGenerator, self).visit_List(node, frame))

    def visit_Dict(self, node: nodes.Dict, frame: Frame) -> None:
        self._checked(lambda: super(_BoundedCodeGenerator, self).visit_Dict(node, frame))

    def visit_Tuple(self, node: nodes.Tuple, frame: Frame) -> None:
        if node.ctx != "load":  # an assignment target (`{% for a, b in ... %}`)
            super().visit_Tuple(node, frame)
        else:
            self._checked(lambda: super(_BoundedCodeGenerator, self).visit_Tuple(node, frame))

    def buffer(self, frame: Frame) -> None:
        frame.buffer = self.temporary_identifier()
        self.writeline(f"{frame.buffer} = environment.bounded_buffer()")

    # Every loop iteration is a step: the loop's body, the first block Jinja's visit_For
    # writes (recursive loops' too), starts with one. (Jinja allows no custom nodes.)
    _step_in_next_block = False

    def visit_For(self, node: nodes.For, frame: Frame) -> None:
        self._step_in_next_block = True
        super().visit_For(node, frame)

    def blockvisit(self, nodes: Any, frame: Frame) -> None:
        if self._step_in_next_block:
            self._step_in_next_block = False
            self.writeline("environment.step()")
        super().blockvisit(nodes, frame)


def _value_args(args: tuple) -> tuple:
    """A filter's arguments from its value on (without the context Jinja passes first)."""
    i = 0
    while i < len(args) and isinstance(args[i], EvalContext | Context | Environment):
        i += 1
    return args[i:]


def _check_repeats(what: str, fields: int, values: Any) -> None:
    """A format string with `fields` substitutions of these values stays in the limit
    (`('%s' * 20) % big`)."""
    items = values if isinstance(values, tuple | list) else (values,)
    _check_product(what, fields, max((value_size(v) for v in items), default=0))


def _check_product(what: str, count: int, each: Any) -> None:
    """`count` copies of something `each` characters long stay in the limit."""
    if isinstance(each, int) and not isinstance(each, bool) and count * each > MAX_VALUE_SIZE:
        raise SecurityError(f"{what} would make over {MAX_VALUE_SIZE:,} characters")


def _check_join(what: str, items: Any, sep: Any) -> None:
    """Joining `items` with `sep` (the `join` filter or `str.join`) stays in the limit:
    the separator between every two items, and the items themselves."""
    if isinstance(items, list | tuple) and isinstance(sep, str):
        _check_product(what, len(items), len(sep))
        _check_product(what, 1, value_size(items))


class BoundedSandbox(ImmutableSandboxedEnvironment):
    """Jinja's immutable sandbox (no `append`, `extend` or `update` on lists and dicts)
    with the bounds of this module's docstring: `*`, `**`, `+`, `%`, `~`, literals and
    block buffers checked before they build a value (deep sizes: `value_size`), filters
    and calls (string methods included) checked on their width arguments and result."""

    code_generator_class = _BoundedCodeGenerator
    intercepted_binops = frozenset({"*", "**", "+", "%"})

    def __init__(self, **options: Any) -> None:
        inner = options.pop("finalize", None)

        def finalize(value: Any) -> Any:  # every `{{ value }}`, sized before str() prints it
            _check_size(value, "a printed value")
            return inner(value) if inner is not None else value

        super().__init__(finalize=finalize, **options)
        self.filters = {name: self._bounded_filter(name, f) for name, f in self.filters.items()}
        self.globals.pop("lipsum", None)  # lorem ipsum of any length: not for prompts

    def _bounded_filter(self, name: str, function: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(function)  # keeps Jinja's pass_context / pass_environment marks
        def bounded(*args: Any, **kwargs: Any) -> Any:
            value, *rest = _value_args(args) or (None,)
            if name in _WIDTH_FILTERS:  # the arguments after the value, not the value
                _check_widths(
                    f"'{name}'",
                    tuple(rest[:1]),
                    {k: v for k, v in kwargs.items() if k in ("width", "linecount", "slices")},
                )
            if name == "join":
                _check_join("'join'", value, rest[0] if rest else kwargs.get("d", ""))
            if name == "tojson":
                indent = rest[0] if rest else kwargs.get("indent")
                if isinstance(indent, int):
                    _check_product("'tojson'", value_size(value), indent)
            if name == "wordwrap" and isinstance(value, str):
                width = rest[0] if rest else kwargs.get("width", 79)
                wrap = rest[2] if len(rest) > 2 else kwargs.get("wrapstring")
                if isinstance(width, int) and width > 0 and isinstance(wrap, str):
                    _check_product("'wordwrap'", len(value) // width + 1, len(wrap))
            if isinstance(value, str):
                if name == "format":  # printf style: value % args
                    _check_percent(value, tuple(rest), "'format'")
                    _check_repeats("'format'", value.count("%"), (*rest, *kwargs.values()))
                if name == "replace":
                    _check_replace(value, tuple(rest))
                if name == "indent":  # every line gets the width (a number, or a string)
                    width = rest[0] if rest else kwargs.get("width", 4)
                    each = len(width) if isinstance(width, str) else width
                    _check_product("'indent'", value.count("\n") + 1, each)
            return _check_size(function(*args, **kwargs), f"'{name}'")

        return bounded

    def bounded_buffer(self) -> list:
        return _BoundedBuffer()

    def checked_literal(self, value: Any) -> Any:
        return _check_size(value, "a literal")

    def bounded_concat(self, values: tuple[Any, ...]) -> str:
        total = sum(value_size(v) for v in values)  # before str() builds the parts
        if total > MAX_VALUE_SIZE:
            raise SecurityError(
                f"'~' would make {total:,} characters; the limit is {MAX_VALUE_SIZE:,}"
            )
        return "".join(str(v) for v in values)

    def is_safe_attribute(self, obj: Any, attr: str, value: Any) -> bool:
        # bytes are not prompt text, and no check here sizes them
        if attr == "encode" and isinstance(obj, str):
            return False
        return super().is_safe_attribute(obj, attr, value)

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
            _check_repeats(
                f"{value.__name__}()", fmt.count("{"), (*args, *values, *kwargs.values())
            )
            return _check_size(wrapped(*args, **kwargs), f"{value.__name__}()")

        return checked

    @staticmethod
    def step() -> None:
        """One loop iteration of the rendering in progress (see MAX_TEMPLATE_STEPS)."""
        _step()

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N805
        _step()  # macros (a self-recursive one calls itself 2^n times), methods, functions
        name = getattr(__obj, "__name__", None) or type(__obj).__name__
        owner = getattr(__obj, "__self__", None)
        if isinstance(owner, str):  # a string method
            if name in _WIDTH_METHODS:
                _check_widths(f"{name}()", args, kwargs)
            if name == "expandtabs":
                _check_product("expandtabs()", owner.count("\t"), (args or [8])[0])
            if name == "replace":
                _check_replace(owner, args)
            if name == "translate" and args and isinstance(args[0], dict):
                longest = max((value_size(v) for v in args[0].values()), default=0)
                _check_product("translate()", len(owner), longest)
            if name == "join" and args:
                _check_join("join()", args[0], owner)
        return _check_size(super().call(__context, __obj, *args, **kwargs), f"{name}()")

    def call_binop(self, context: Any, operator_name: str, left: Any, right: Any) -> Any:
        if operator_name == "*":
            integers = isinstance(left, int) and isinstance(right, int)
            if integers and left.bit_length() + right.bit_length() > MAX_VALUE_SIZE:
                raise SecurityError("'*' result too large")
            for seq, count in ((left, right), (right, left)):
                sized = isinstance(seq, str | list | tuple) and isinstance(count, int)
                if sized and value_size(seq) * count > MAX_VALUE_SIZE:
                    raise SecurityError(
                        f"'*' would make {value_size(seq) * count:,} characters or items; "
                        f"the limit is {MAX_VALUE_SIZE:,}"
                    )
            return operator.mul(left, right)
        if operator_name == "+":
            sized = isinstance(left, str | list | tuple) and isinstance(right, str | list | tuple)
            if sized and value_size(left) + value_size(right) > MAX_VALUE_SIZE:
                raise SecurityError(
                    f"'+' would make {value_size(left) + value_size(right):,} characters or "
                    f"items; the limit is {MAX_VALUE_SIZE:,}"
                )
            return operator.add(left, right)
        if operator_name == "%":
            _check_percent(left, right, "'%'")
            if isinstance(left, str):
                values = tuple(right.values()) if isinstance(right, dict) else right
                _check_repeats("'%'", left.count("%"), values)
            return _check_size(operator.mod(left, right), "'%'")
        integers = isinstance(left, int) and isinstance(right, int) and right > 0
        if integers and max(left.bit_length(), 1) * right > MAX_VALUE_SIZE:
            raise SecurityError(
                f"'**' result too large: a {left.bit_length()}-bit number to the power {right:,}"
                if right.bit_length() < 64
                else "'**' result too large"
            )
        return operator.pow(left, right)


def render_bounded(
    template: Template, context: dict[str, Any], max_steps: int = MAX_TEMPLATE_STEPS
) -> str:
    """`template.render(context)`, stopped once its output passes MAX_VALUE_SIZE
    characters (a loop printing a long value many times) or it has taken `max_steps`
    loop iterations and calls."""
    parts: list[str] = []
    total = 0
    token = _steps_left.set([max_steps])
    try:
        for chunk in template.generate(context):
            total += len(chunk)
            if total > MAX_VALUE_SIZE:
                raise SecurityError(f"the rendered prompt passed {MAX_VALUE_SIZE:,} characters")
            parts.append(chunk)
    finally:
        _steps_left.reset(token)
    return "".join(parts)
