"""Lowering: the flow's syntax tree -> IR.

Lowering is purely structural. It turns variables into data edges (a name
that is not defined becomes an `unresolved` node), binds call arguments by
name where the syntax says so (`solver(q=x)`, or `solver(question)` for a
variable of that name; other positional arguments get `#i` placeholders),
and makes lambdas (`_` in `until`, `by`, `map`, `expand`, ...) into regions.
All checking happens in the `resolve` pass, so every problem is reported
with its position in one place.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from hive.compiler import ast
from hive.compiler.errors import Span
from hive.compiler.ir import Graph, Node, Region

# Built-in functions and combinators; agents may not take these names.
COMBINATORS = frozenset({"vote", "best", "map", "beam", "tree", "refine", "join"})
FUNCTIONS = frozenset({"len", "str", "int", "float", "lower", "strip", "concat"})
BUILTINS = COMBINATORS | FUNCTIONS
# Names bound implicitly inside lambdas.
IMPLICIT = frozenset({"_", "_critique"})


class _Lowerer:
    def __init__(self, locate: Callable[[int], Span]):
        self.locate = locate
        self.next_id = 0
        # Names assigned where they do not outlive their block, for "undefined" hints.
        self.local_only: dict[str, str] = {}

    def new(
        self,
        region: Region,
        opcode: str,
        pos: int,
        inputs=(),
        regions=(),
        keywords: tuple[ast.Keyword, ...] = (),
        **attrs: Any,
    ) -> int:
        node = Node(
            self.next_id, opcode, list(inputs), attrs, span=self.locate(pos), regions=list(regions)
        )
        for kw in keywords:
            node.arg_spans.setdefault(kw.name, []).append(self.locate(kw.pos))
        self.next_id += 1
        region.nodes.append(node)
        return node.id

    def param(self, region: Region, name: str) -> int:
        region.params.append(self.next_id)
        region.param_names.append(name)
        self.next_id += 1
        return region.params[-1]

    # -- statements ---------------------------------------------------------

    def block(
        self, stmts: tuple[ast.Stmt, ...], region: Region, env: dict[str, int], top: bool
    ) -> None:
        for i, stmt in enumerate(stmts):
            if isinstance(stmt, ast.Return):
                if not top:
                    self.new(region, "unreachable", stmt.pos, reason="return inside a block")
                value = self.expr(stmt.value, region, env)
                self.new(region, "return", stmt.pos, [value])
                if i + 1 < len(stmts):
                    self.new(region, "unreachable", stmts[i + 1].pos, reason="code after return")
                return
            self.stmt(stmt, region, env)

    def stmt(self, stmt: ast.Stmt, region: Region, env: dict[str, int]) -> None:
        if isinstance(stmt, ast.Assign):
            env[stmt.name] = self.expr(stmt.value, region, env)
        elif isinstance(stmt, ast.ExprStmt):
            self.expr(stmt.value, region, env)
        elif isinstance(stmt, ast.If):
            self.if_(stmt, region, env)
        elif isinstance(stmt, ast.For | ast.Repeat | ast.While):
            self.loop(stmt, region, env)
        else:  # pragma: no cover - the parser makes no other statements
            raise AssertionError(stmt)

    def if_(self, stmt: ast.If, region: Region, env: dict[str, int]) -> None:
        # elif chains become nested ifs in the else branch.
        (cond, body), rest = stmt.branches[0], stmt.branches[1:]
        orelse = (ast.If(rest[0][0].pos, rest, stmt.orelse),) if rest else stmt.orelse
        cond_id = self.expr(cond, region, env)
        branches = [(Region("then"), body), (Region("else"), orelse)]
        envs = []
        for sub, stmts in branches:
            local = dict(env)
            self.block(stmts, sub, local, top=False)
            envs.append(local)
        assigned = [set(_assigned(stmts)) for _, stmts in branches]
        # Carried out: names that existed before, and names both branches define at
        # their own level (one set only inside a nested block does not outlive it).
        carried = sorted(
            n for n in assigned[0] | assigned[1] if n in env or (n in envs[0] and n in envs[1])
        )
        for name in (assigned[0] | assigned[1]) - set(carried):
            self.local_only[name] = (
                f"it is assigned in only one branch of the 'if' on line {self.locate(stmt.pos).line}"
            )
        for (sub, _), local in zip(branches, envs, strict=True):
            sub.yields = [local[n] if n in local else env[n] for n in carried]
        node = self.new(
            region, "if", stmt.pos, [cond_id], [b for b, _ in branches], carried=carried
        )
        self.carry_out(node, carried, region, env, stmt.pos)

    def loop(
        self, stmt: ast.For | ast.Repeat | ast.While, region: Region, env: dict[str, int]
    ) -> None:
        # The loop variable is the body's own: it is rebound every iteration, not carried.
        loop_var = stmt.var if isinstance(stmt, ast.For) else None
        carried = sorted(n for n in set(_assigned(stmt.body)) if n in env and n != loop_var)
        for name in set(_assigned(stmt.body)) - set(carried) - {loop_var}:
            where = self.locate(stmt.pos).line
            self.local_only[name] = (
                f"it is first assigned inside the loop on line {where}; assign it before the loop"
            )
        inputs: list[int] = []
        regions: list[Region] = []
        attrs: dict[str, Any] = {"carried": carried}
        body = Region("body")
        local = dict(env)
        if isinstance(stmt, ast.For):
            inputs.append(self.expr(stmt.iterable, region, env))
            local[stmt.var] = self.param(body, stmt.var)
            op = "for"
        elif isinstance(stmt, ast.Repeat):
            attrs["count"] = stmt.count
            op = "repeat"
        else:
            attrs["max_iterations"] = stmt.max_iterations
            op = "while"
            cond = Region("cond")
            cond_env = dict(env)
            for name in carried:
                cond_env[name] = self.param(cond, name)
            cond.yields = [self.expr(stmt.cond, cond, cond_env)]
            regions.append(cond)
        for name in carried:
            local[name] = self.param(body, name)
        inputs.extend(env[n] for n in carried)
        self.block(stmt.body, body, local, top=False)
        body.yields = [local[n] for n in carried]
        regions.append(body)
        node = self.new(region, op, stmt.pos, inputs, regions, **attrs)
        self.carry_out(node, carried, region, env, stmt.pos)

    def carry_out(
        self, node: int, carried: list[str], region: Region, env: dict[str, int], pos: int
    ) -> None:
        for name in carried:
            env[name] = self.new(region, "field", pos, [node], name=name)

    # -- expressions --------------------------------------------------------

    def expr(self, e: ast.Expr, region: Region, env: dict[str, int]) -> int:
        match e:
            case ast.Literal(value=value):
                return self.new(region, "const", e.pos, value=value)
            case ast.Var(name=name):
                if name in env:
                    return env[name]
                note = self.local_only.get(name)
                return self.new(
                    region, "unresolved", e.pos, name=name, candidates=sorted(env), note=note
                )
            case ast.Field(value=value, name=name):
                return self.new(
                    region, "field", e.name_pos, [self.expr(value, region, env)], name=name
                )
            case ast.Index(value=value, index=index):
                inputs = [self.expr(value, region, env), self.expr(index, region, env)]
                return self.new(region, "index", e.pos, inputs)
            case ast.Unary(op=op, operand=operand):
                return self.new(region, "unop", e.pos, [self.expr(operand, region, env)], op=op)
            case ast.Binary(op=op, left=left, right=right):
                inputs = [self.expr(left, region, env), self.expr(right, region, env)]
                return self.new(region, "binop", e.pos, inputs, op=op)
            case ast.ListExpr(items=items):
                return self.new(region, "list", e.pos, [self.expr(i, region, env) for i in items])
            case ast.RecordExpr(entries=entries):
                inputs = [self.expr(v, region, env) for _, v in entries]
                return self.new(region, "record", e.pos, inputs, keys=[k for k, _ in entries])
            case ast.Sample(call=call, n=n):
                return self.agent_call("sample", call, e.pos, region, env, n=n)
            case ast.Spawn(call=call):
                return self.agent_call("spawn", call, e.pos, region, env)
            case ast.Resample(call=call, until=until, max_attempts=k):
                lam = self.lam("until", until, env, ("_",))
                return self.agent_call("resample", call, e.pos, region, env, [lam], max_attempts=k)
            case ast.Call(name=name) if name in BUILTINS:
                return self.builtin(e, region, env)
            case ast.Call():
                return self.agent_call("call", e, e.pos, region, env)
        raise AssertionError(e)  # pragma: no cover

    def agent_call(self, op, call, pos, region, env, regions=(), **attrs) -> int:
        if not isinstance(call, ast.Call) or call.name in BUILTINS:
            what = f"'{call.name}(...)'" if isinstance(call, ast.Call) else "this expression"
            return self.new(
                region, "unresolved", pos, name=None, reason=f"{op} needs an agent call, not {what}"
            )
        names, inputs = [], []
        for i, arg in enumerate(call.args):
            names.append(
                arg.name if isinstance(arg, ast.Var) and arg.name not in IMPLICIT else f"#{i}"
            )
            inputs.append(self.expr(arg, region, env))
        for kw in call.kwargs:
            names.append(kw.name)
            inputs.append(self.expr(kw.value, region, env))
        return self.new(
            region, op, pos, inputs, regions, call.kwargs,
            agent=call.name, arg_names=names, num_positional=len(call.args), **attrs,
        )  # fmt: skip

    def lam(
        self, name: str, body: ast.Expr, env: dict[str, int], params: tuple[str, ...]
    ) -> Region:
        region = Region(name)
        local = dict(env)
        for p in params:
            local[p] = self.param(region, p)
        region.yields = [self.expr(body, region, local)]
        return region

    def builtin(self, call: ast.Call, region: Region, env: dict[str, int]) -> int:
        name = call.name
        attrs: dict[str, Any] = {}
        regions: list[Region] = []
        inputs: list[int] = []
        positional = list(call.args)
        lambdas = _LAMBDA_ARGS.get(name, {})
        seen: set[str] = set()
        for kw in call.kwargs:
            key = kw.name
            if key in seen:
                attrs.setdefault("duplicate_kwargs", []).append(key)
                continue
            seen.add(key)
            if key in lambdas:
                if key == "by" and isinstance(kw.value, ast.Var) and kw.value.name != "_":
                    attrs["by_field"] = kw.value.name  # `by=answer`: a field of each element
                else:
                    regions.append(self.lam(key, kw.value, env, lambdas[key]))
            elif key not in LITERAL_ARGS.get(name, ()):
                attrs.setdefault("unknown_kwargs", []).append(key)
            elif (literal := _literal_value(kw.value)) is not _NOT_LITERAL:
                attrs[key] = literal
            else:
                attrs.setdefault("bad_kwargs", []).append(key)
        if name == "map" and len(positional) == 2:
            inputs.append(self.expr(positional[0], region, env))
            regions.append(self.lam("each", positional[1], env, ("_",)))
        elif name == "refine" and positional:
            regions.insert(0, self.lam("draft", positional[0], env, ()))
            attrs["num_positional"] = len(positional)
        else:
            inputs.extend(self.expr(a, region, env) for a in positional)
        regions.sort(key=lambda r: _REGION_ORDER.index(r.name))  # not the keywords' order
        op = name if name in COMBINATORS else "builtin"
        if op == "builtin":
            attrs["name"] = name
        return self.new(region, op, call.pos, inputs, regions, call.kwargs, **attrs)


def keyword_names(builtin: str) -> list[str]:
    """The keyword arguments a built-in or combinator takes (for did-you-mean hints)."""
    return sorted(set(LITERAL_ARGS.get(builtin, ())) | set(_LAMBDA_ARGS.get(builtin, {})))


_NOT_LITERAL = object()


def _literal_value(expr: ast.Expr) -> Any:
    """A literal's value, a negative number's too (`width=-2` is then out of range, not
    "not a literal"); else _NOT_LITERAL."""
    if isinstance(expr, ast.Literal):
        return expr.value
    if (
        isinstance(expr, ast.Unary)
        and expr.op == "-"
        and isinstance(expr.operand, ast.Literal)
        and isinstance(expr.operand.value, int | float)
        and not isinstance(expr.operand.value, bool)
    ):
        return -expr.operand.value
    return _NOT_LITERAL


# Keyword arguments that take a literal value, per built-in.
LITERAL_ARGS: dict[str, frozenset[str]] = {
    "best": frozenset({"lowest"}),
    "beam": frozenset({"width", "depth", "branch"}),
    "tree": frozenset({"breadth", "depth", "keep"}),
    "refine": frozenset({"rounds"}),
    "concat": frozenset({"sep"}),
}
# The order in which a combinator's regions run (and are kept in the IR).
_REGION_ORDER = ("each", "draft", "by", "expand", "score", "critique", "revise", "stop")

# Keyword arguments of combinators that are lambdas, with the names they bind.
_LAMBDA_ARGS: dict[str, dict[str, tuple[str, ...]]] = {
    "best": {"by": ("_",)},
    "vote": {"by": ("_",)},
    "beam": {"expand": ("_",), "score": ("_",)},
    "tree": {"expand": ("_",), "score": ("_",)},
    "refine": {"critique": ("_",), "revise": ("_", "_critique"), "stop": ("_", "_critique")},
}


def _assigned(stmts: tuple[ast.Stmt, ...]) -> list[str]:
    names: list[str] = []
    for stmt in stmts:
        if isinstance(stmt, ast.Assign):
            names.append(stmt.name)
        elif isinstance(stmt, ast.If):
            for _, body in stmt.branches:
                names.extend(_assigned(body))
            names.extend(_assigned(stmt.orelse))
        elif isinstance(stmt, ast.For | ast.Repeat | ast.While):
            names.extend(_assigned(stmt.body))
    return names


def lower(program: ast.Program, inputs: list[str], locate: Callable[[int], Span]) -> Graph:
    """Lower `program`; `inputs` are the spec's input names, bound before the first statement."""
    lowerer = _Lowerer(locate)
    body = Region("flow")
    env: dict[str, int] = {}
    for name in inputs:
        env[name] = lowerer.new(body, "input", 0, name=name)
    lowerer.block(program.body, body, env, top=True)
    return Graph(body, num_values=lowerer.next_id)
