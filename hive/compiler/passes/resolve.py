"""Pass 1, `resolve`: names, arity, types, bounds, cycles, dead code, unused agents.

Walks the IR in program order, giving every node its type and binding every
agent call's arguments to the agent's parameters (positional `#i`
placeholders become parameter names). Each problem becomes a diagnostic at
the node's position; the pass never stops at the first one.
"""

from __future__ import annotations

from contextlib import contextmanager

from hive.compiler.agents import AgentInfo
from hive.compiler.errors import Diagnostic, closest, did_you_mean
from hive.compiler.ir import Graph, Node, Region, loop_iterations
from hive.compiler.lower import BUILTINS, keyword_names
from hive.compiler.source import SourceDoc
from hive.compiler.spec import Spec
from hive.compiler.types import (
    ANY,
    BOOLEAN,
    INTEGER,
    NULL,
    NUMBER,
    STRING,
    Type,
    assignable,
    future_of,
    is_numeric,
    list_of,
    parse_type,
    record,
    unify,
)

MAX_SAMPLES = 4096
MAX_TYPE_PASSES = 4  # trial passes over a loop body before its carried types are final
MAX_EXTRA_TYPED_NODES = 500_000  # bound on all trial passes of one flow  # per combinator; keeps every flow's call count bounded and sane
SEARCH_STATE = record(("text", STRING), ("steps", list_of(STRING)), ("score", NUMBER))
_INT_ARGS = {
    "beam": {"width": True, "depth": True, "branch": False},
    "tree": {"breadth": True, "depth": True, "keep": False},
    "refine": {"rounds": True},
}
_LAMBDAS = {"beam": ("expand", "score"), "tree": ("expand", "score")}


class _Resolver:
    def __init__(self, spec: Spec, doc: SourceDoc, agents: dict[str, AgentInfo]):
        self.spec = spec
        self.doc = doc
        self.agents = agents
        self.types: dict[int, Type] = {}
        self.unresolved: set[int] = set()  # values already reported as undefined
        self.diagnostics: list[Diagnostic] = []
        self.meant: dict[int, set[str]] = {}  # node id -> names its misspelt keywords meant
        self.inputs = spec.input_specs()
        # Extra passes over loop bodies (to find the types later iterations see) are
        # bounded in total, so nested loops cannot multiply them without limit.
        self.extra_pass_budget = MAX_EXTRA_TYPED_NODES

    @contextmanager
    def muted(self):
        """Type without reporting: a trial pass whose errors the final pass reports."""
        kept, self.diagnostics = self.diagnostics, []
        try:
            yield
        finally:
            self.diagnostics = kept

    def error(
        self,
        node: Node,
        message: str,
        hint: str | None = None,
        keyword: str | None = None,
        occurrence: int = 0,
    ) -> None:
        """Report at the node, or at the `occurrence`-th keyword argument `keyword`."""
        spans = node.arg_spans.get(keyword, []) if keyword is not None else []
        span = spans[min(occurrence, len(spans) - 1)] if spans else node.span
        assert span is not None
        self.diagnostics.append(self.doc.diagnostic("error", message, span, hint))

    def not_misspelt(self, node: Node, keyword: str) -> bool:
        """False when a misspelt keyword of `node` meant `keyword` (already reported)."""
        return keyword not in self.meant.get(node.id, ())

    def warn(self, node: Node, message: str, hint: str | None = None) -> None:
        assert node.span is not None
        self.diagnostics.append(self.doc.diagnostic("warning", message, node.span, hint))

    def misspelt_keyword(
        self,
        node: Node,
        key: str,
        choices: list[str],
        message: str,
        takes: str | None = None,
        occurrence: int = 0,
    ) -> None:
        """An unknown keyword: reported at the keyword, with the name it probably meant
        remembered so that the follow-up error ("missing ...") is not reported too."""
        meant = closest(key, choices)
        if meant is not None:
            self.meant.setdefault(node.id, set()).add(meant)
            hint: str | None = f"did you mean '{meant}'?"
        else:
            takes = takes or (", ".join(choices) if choices else None)
            hint = f"it takes {takes}" if takes else None
        self.error(node, message, hint, keyword=key, occurrence=occurrence)

    def t(self, value: int) -> Type:
        return self.types.get(value, ANY)

    # -- walking ----------------------------------------------------------------

    def region(self, region: Region, param_types: list[Type]) -> list[Type]:
        for pid, ptype in zip(region.params, param_types, strict=True):
            self.types[pid] = ptype
        self.extra_pass_budget -= len(region.nodes)
        for node in region.nodes:
            node.type = self.node(node)
            self.types[node.id] = node.type
        return [self.t(v) for v in region.yields]

    def node(self, node: Node) -> Type:
        handler = getattr(self, f"op_{node.op}")
        return handler(node)

    # -- leaves -----------------------------------------------------------------

    def op_input(self, node: Node) -> Type:
        decl = self.inputs[node.attrs["name"]]
        return parse_type(decl.type, decl.max_items)

    def op_const(self, node: Node) -> Type:
        value = node.attrs["value"]
        if value is None:
            return NULL
        if isinstance(value, bool):
            return BOOLEAN
        if isinstance(value, int):
            return INTEGER
        if isinstance(value, float):
            return NUMBER
        return STRING

    def op_unresolved(self, node: Node) -> Type:
        self.unresolved.add(node.id)
        name = node.attrs.get("name")
        if name is None:
            self.error(node, node.attrs["reason"])
        elif name in self.agents:
            self.error(node, f"'{name}' is an agent; call it: {name}(...)")
        elif name in ("_", "_critique"):
            self.error(node, f"'{name}' is only defined inside a combinator's lambda")
        else:
            hint = node.attrs.get("note") or did_you_mean(name, node.attrs.get("candidates", []))
            self.error(node, f"undefined variable '{name}'", hint)
        return ANY

    def op_unreachable(self, node: Node) -> Type:
        if node.attrs["reason"] == "return inside a block":
            self.error(node, "'return' is only allowed at the end of the flow, not inside a block")
        else:
            self.error(node, "unreachable code after 'return'")
        return ANY

    def op_return(self, node: Node) -> Type:
        value = self.t(node.inputs[0])
        declared = self.spec.outputs
        if declared is None:
            return value
        if value.kind == "any":
            return value
        if value.kind != "record":
            self.error(
                node, f"the flow returns {value}, but the spec declares outputs {sorted(declared)}"
            )
            return value
        for name, tname in declared.items():
            got = value.field(name)
            if got is None:
                self.error(
                    node,
                    f"the returned record has no output '{name}'",
                    did_you_mean(name, [k for k, _ in value.fields]),
                )
            elif not assignable(got, parse_type(tname)):
                self.error(node, f"output '{name}' is declared {tname} but the flow returns {got}")
        for name, _ in value.fields:
            if name not in declared:
                self.error(
                    node,
                    f"the returned record has '{name}', which is not a declared output",
                    did_you_mean(name, declared),
                )
        return value

    # -- data -------------------------------------------------------------------

    def op_field(self, node: Node) -> Type:
        base = self.t(node.inputs[0])
        name = node.attrs["name"]
        if base.kind == "any":
            return self.field_of_either(node, base, name) if base.alternatives else ANY
        if base.kind == "record":
            got = base.field(name)
            if got is None:
                fields = [k for k, _ in base.fields]
                whose = f"'{base.origin}' result" if base.origin else "record"
                hint = did_you_mean(name, fields) or f"its fields: {', '.join(fields)}"
                self.error(node, f"{whose} has no field '{name}'", hint)
                return ANY
            return got
        if base.kind == "future":
            self.error(node, f"cannot read '.{name}' of a spawned call", "join it first: join(h)")
        elif base.kind == "list":
            self.error(
                node, f"cannot read '.{name}' of a list", "index it, or use map(list, _.field)"
            )
        else:
            self.error(node, f"cannot read '.{name}' of a {base}")
        return ANY

    def field_of_either(self, node: Node, base: Type, name: str) -> Type:
        """`.name` of a value that is one of `base.alternatives` (merged by if/else or
        by loop iterations): an error if none has the field, a warning if some lack it."""
        having = [t.field(name) for t in base.alternatives if t.kind == "record"]
        found = [t for t in having if t is not None]
        if not found:
            self.error(node, f"cannot read '.{name}': the value here is {base}")
            return ANY
        if len(found) < len(base.alternatives):
            self.warn(
                node,
                f"'.{name}' may fail: the value here is {base}",
                "a branch or a loop iteration gives it another type",
            )
        merged = found[0]
        for t in found[1:]:
            merged = unify(merged, t)
        return merged

    def op_index(self, node: Node) -> Type:
        base, index = self.t(node.inputs[0]), self.t(node.inputs[1])
        if base.kind in ("list", "string") and index.kind not in ("integer", "any"):
            self.error(node, f"a {base.kind} index must be an integer, not {index}")
        if base.kind == "list":
            return base.item or ANY
        if base.kind == "string":
            return STRING
        if base.kind == "record":
            if index.kind not in ("string", "any"):
                self.error(node, f"a record index must be a string, not {index}")
            return ANY
        if base.kind != "any":
            self.error(node, f"cannot index a {base}")
        return ANY

    def op_unop(self, node: Node) -> Type:
        operand = self.t(node.inputs[0])
        if node.attrs["op"] == "not":
            return BOOLEAN
        if not is_numeric(operand):
            self.error(node, f"cannot negate a {operand}")
            return ANY
        return operand

    def op_binop(self, node: Node) -> Type:
        op = node.attrs["op"]
        left, right = self.t(node.inputs[0]), self.t(node.inputs[1])
        if op in ("and", "or", "==", "!="):
            return BOOLEAN
        if op == "in":
            if right.kind not in ("list", "string", "record", "any"):
                self.error(node, f"'in' needs a list, string or record on the right, not {right}")
            return BOOLEAN
        if "any" in (left.kind, right.kind):
            return BOOLEAN if op in ("<", "<=", ">", ">=") else ANY
        if op in ("<", "<=", ">", ">="):
            if not (is_numeric(left) and is_numeric(right)) and not (
                left.kind == right.kind == "string"
            ):
                self.error(node, f"cannot compare {left} {op} {right}")
            return BOOLEAN
        if op == "+" and left.kind == right.kind and left.kind in ("string", "list"):
            if left.kind == "list":
                bound = (
                    None if left.bound is None or right.bound is None else left.bound + right.bound
                )
                return list_of(unify(left, right).item or ANY, bound)  # `[] + xs`: xs's items
            return STRING
        if is_numeric(left) and is_numeric(right):
            if op == "/" or NUMBER in (left, right):
                return NUMBER
            return INTEGER
        self.error(node, f"cannot apply '{op}' to {left} and {right}")
        return ANY

    def op_list(self, node: Node) -> Type:
        item: Type | None = None
        for value in node.inputs:
            item = self.t(value) if item is None else unify(item, self.t(value))
        return list_of(item or ANY, len(node.inputs))

    def op_record(self, node: Node) -> Type:
        keys = node.attrs["keys"]
        seen = set()
        for key in keys:
            if key in seen:
                self.error(node, f"duplicate key '{key}' in record")
            seen.add(key)
        return record(*((k, self.t(v)) for k, v in zip(keys, node.inputs, strict=True)))

    def op_builtin(self, node: Node) -> Type:
        name = node.attrs["name"]
        args = [self.t(v) for v in node.inputs]
        self.no_kwargs(node)
        expected = {"len": 1, "str": 1, "int": 1, "float": 1, "lower": 1, "strip": 1, "concat": 1}[
            name
        ]
        if len(args) != expected:
            self.error(node, f"{name}() takes {expected} argument(s), got {len(args)}")
            return ANY
        (arg,) = args
        if name == "len":
            if arg.kind not in ("list", "string", "record", "any"):
                self.error(node, f"len() needs a list or string, not {arg}")
            return INTEGER
        if name == "concat":
            if arg.kind not in ("list", "any"):
                self.error(node, f"concat() needs a list, not {arg}")
            if not isinstance(node.attrs.get("sep", ""), str):
                self.error(node, "concat() sep must be a string", keyword="sep")
            return STRING
        return {"str": STRING, "int": INTEGER, "float": NUMBER, "lower": STRING, "strip": STRING}[
            name
        ]

    def no_kwargs(self, node: Node) -> None:
        """Report keyword arguments that lowering could not take (see lower.LITERAL_ARGS)."""
        what = node.attrs.get("name", node.op)
        for key in node.attrs.get("bad_kwargs", []):
            self.error(node, f"argument '{key}' of {what}() must be a literal", keyword=key)
        given = set(node.arg_spans)
        for key in node.attrs.get("unknown_kwargs", []):
            message = f"{what}() has no argument '{key}'"
            choices = [k for k in keyword_names(what) if k not in given]
            self.misspelt_keyword(node, key, choices, message)
        repeats: dict[str, int] = {}
        for key in node.attrs.get("duplicate_kwargs", []):
            repeats[key] = repeats.get(key, 0) + 1
            message = f"argument '{key}' of {what}() is given twice"
            self.error(node, message, keyword=key, occurrence=repeats[key])

    # -- agent calls ------------------------------------------------------------

    def bind(self, node: Node) -> Type:
        name = node.attrs["agent"]
        info = self.agents.get(name)
        if info is None:
            hint = did_you_mean(name, self.agents) or (
                f"agents: {', '.join(self.agents)}" if len(self.agents) < 8 else None
            )
            self.error(node, f"unknown agent '{name}'", hint)
            for value in node.inputs:
                self.check_argument(node, value)
            return ANY
        bound: list[str] = []
        given = set(node.attrs["arg_names"])  # not suggested for a misspelt one
        seen: dict[str, int] = {}  # occurrences of each unknown keyword so far
        num_positional = node.attrs.get("num_positional", 0)
        is_misspelt = False  # a positional argument is an undefined (misspelt?) variable
        for i, (arg, value) in enumerate(zip(node.attrs["arg_names"], node.inputs, strict=True)):
            self.check_argument(node, value)
            if i < num_positional and arg not in info.params:
                # A positional argument that is not a same-named variable binds by position.
                if not info.has_declared_params and value in self.unresolved:
                    is_misspelt = True  # already reported, with a did-you-mean
                    continue
                if not info.has_declared_params:
                    self.error(
                        node,
                        f"argument {i + 1} of '{name}' needs a parameter name",
                        f"write <param>=<value>; '{name}' takes {_params(info)}",
                    )
                    continue
                if i >= len(info.params):
                    self.error(
                        node,
                        f"'{name}' takes {len(info.params)} argument(s), got {len(node.inputs)}",
                    )
                    continue
                arg = info.params[i]
            elif arg not in info.params:
                message = f"agent '{name}' has no parameter '{arg}'"
                free = [p for p in info.params if p not in given]
                seen[arg] = seen.get(arg, 0) + 1
                self.misspelt_keyword(node, arg, free, message, _params(info), seen[arg] - 1)
                continue
            if arg in bound:
                message = f"parameter '{arg}' of '{name}' is given twice"
                names = node.attrs["arg_names"]  # which keyword `arg` this is (not positional)
                keyword = sum(1 for j in range(num_positional, i) if names[j] == arg)
                self.error(node, message, keyword=arg, occurrence=keyword)
            bound.append(arg)
        meant = self.meant.get(node.id, set())
        missing = [p for p in info.params if p not in bound and p not in meant]
        if missing and not is_misspelt:
            self.error(node, f"missing argument(s) for '{name}': {', '.join(missing)}")
        if len(bound) == len(node.inputs):
            node.attrs["arg_names"] = bound
        return info.result

    def check_argument(self, node: Node, value: int) -> None:
        if self.t(value).kind == "future":
            self.error(
                node, "an argument is a spawned call that was not joined", "join it first: join(h)"
            )

    def op_call(self, node: Node) -> Type:
        return self.bind(node)

    def op_spawn(self, node: Node) -> Type:
        return future_of(self.bind(node))

    def op_sample(self, node: Node) -> Type:
        result = self.bind(node)
        n = node.attrs["n"]
        if not 1 <= n <= MAX_SAMPLES:
            self.error(node, f"sample count must be between 1 and {MAX_SAMPLES}, got {n}")
        return list_of(result, n)

    def op_resample(self, node: Node) -> Type:
        result = self.bind(node)
        if not 1 <= node.attrs["max_attempts"] <= MAX_SAMPLES:
            self.error(node, f"'max' must be between 1 and {MAX_SAMPLES}")
        self.region(node.regions[0], [result])
        return (
            result.with_fields(("accepted", BOOLEAN), ("attempts", INTEGER))
            if result.kind == "record"
            else ANY
        )

    def op_join(self, node: Node) -> Type:
        self.no_kwargs(node)
        args = [self.t(v) for v in node.inputs]
        if not args:
            self.error(node, "join() needs at least one spawned call")
            return ANY
        items = []
        for arg in args:
            if arg.kind == "future":
                items.append(arg.item or ANY)
            elif arg.kind == "list" and (arg.item is None or arg.item.kind in ("future", "any")):
                items.append(list_of((arg.item.item if arg.item else None) or ANY, arg.bound))
            elif arg.kind != "any":
                self.error(
                    node,
                    f"join() takes spawned calls, not {arg}",
                    "start calls with: h = spawn agent(...)",
                )
                items.append(ANY)
            else:
                items.append(ANY)
        if len(items) == 1:
            return items[0]
        merged = items[0]
        for item in items[1:]:
            merged = unify(merged, item)
        return list_of(merged, len(items))

    # -- combinators ------------------------------------------------------------

    def list_arg(self, node: Node, what: str) -> Type:
        if len(node.inputs) != 1:
            self.error(
                node, f"{what}() takes one list, got {len(node.inputs)} positional argument(s)"
            )
            return list_of(ANY)
        arg = self.t(node.inputs[0])
        if arg.kind == "any":
            return list_of(ANY)
        if arg.kind != "list":
            self.error(node, f"{what}() needs a list, not {arg}")
            return list_of(ANY)
        return arg

    def require_bound(self, node: Node, what: str) -> int | None:
        """The most elements the iterated list can have; an error when it is unknown.

        Recorded on the node (`bound` / `num_candidates`) for the passes that count calls.
        """
        items = self.t(node.inputs[0]) if node.inputs else ANY
        if items.kind == "any":
            hint = "declare the input as list[...] with max_items"
            self.error(node, f"{what} over a value of unknown type is unbounded", hint)
        elif items.kind == "list" and items.bound is None:
            hint = "declare max_items on the input list"
            self.error(node, f"{what} over a list of unknown length is unbounded", hint)
        return items.bound if items.kind == "list" else None

    def by(self, node: Node, element: Type, numeric: bool) -> None:
        lam = node.region("by")
        if "by_field" in node.attrs:
            name = node.attrs["by_field"]
            if element.kind == "record":
                got = element.field(name)
                if got is None:
                    fields = [k for k, _ in element.fields]
                    self.error(
                        node,
                        f"{node.op} by '{name}': the elements have no field '{name}'",
                        did_you_mean(name, fields) or f"their fields: {', '.join(fields)}",
                    )
                elif numeric and not is_numeric(got):
                    self.error(node, f"best by '{name}' needs a number, but '{name}' is {got}")
            elif element.kind != "any":
                self.error(node, f"{node.op} by a field needs records, not {element}")
        elif lam is not None:
            (result,) = self.region(lam, [element])
            if numeric and not is_numeric(result):
                self.error(
                    node,
                    f"best's scorer must give a number, not {result}",
                    "extract a number, e.g. extract: {score: {regex: '(\\d+)', type: number}}",
                )
        elif self.not_misspelt(node, "by"):
            self.error(node, f"{node.op}() needs by=<field> or by=<expression over _>")

    def op_vote(self, node: Node) -> Type:
        return self.select(node, numeric=False, added=("votes", INTEGER))

    def op_best(self, node: Node) -> Type:
        return self.select(node, numeric=True, added=("score", NUMBER))

    def select(self, node: Node, numeric: bool, added: tuple[str, Type]) -> Type:
        """vote / best: one element of a list, chosen by a field or a scorer over `_`."""
        self.no_kwargs(node)
        items = self.list_arg(node, node.op)
        if node.region("by") is not None:  # a scorer runs once per candidate
            node.attrs["num_candidates"] = self.require_bound(node, f"{node.op} by an expression")
        element = items.item or ANY
        self.by(node, element, numeric=numeric)
        return element.with_fields(added) if element.kind == "record" else ANY

    def op_map(self, node: Node) -> Type:
        self.no_kwargs(node)
        lam = node.region("each")
        if lam is None:
            self.error(
                node,
                "map() takes a list and an expression over _, e.g. map(chunks, summarize(chunk=_))",
            )
            return list_of(ANY)
        items = self.list_arg(node, "map")
        if len(node.inputs) == 1:
            self.require_bound(node, "map")
        (result,) = self.region(lam, [items.item or ANY])
        return list_of(result, items.bound)

    def int_args(self, node: Node) -> None:
        for key, required in _INT_ARGS[node.op].items():
            value = node.attrs.get(key)
            if value is None:
                if required and self.not_misspelt(node, key):
                    self.error(node, f"{node.op}() needs {key}=<integer>")
                continue
            if (
                not isinstance(value, int)
                or isinstance(value, bool)
                or not 1 <= value <= MAX_SAMPLES
            ):
                self.error(
                    node, f"{node.op}() {key} must be an integer between 1 and {MAX_SAMPLES}"
                )

    def search(self, node: Node) -> Type:
        self.no_kwargs(node)
        self.int_args(node)
        if node.inputs:
            self.error(node, f"{node.op}() takes only keyword arguments: expand=, score=, ...")
        for name in _LAMBDAS[node.op]:
            if node.region(name) is None and self.not_misspelt(node, name):
                self.error(node, f"{node.op}() needs {name}=<expression over _>")
        expand, score = node.region("expand"), node.region("score")
        if expand is not None:
            self.region(expand, [SEARCH_STATE])
            self.require_call(node, expand, "expand")
        if score is not None:
            (result,) = self.region(score, [SEARCH_STATE])
            if not is_numeric(result):
                self.error(node, f"{node.op}() score must be a number, not {result}")
        return SEARCH_STATE

    def require_call(self, node: Node, region: Region, what: str) -> None:
        produced = region.nodes[-1] if region.nodes else None
        if produced is None or produced.op != "call" or produced.id != region.yields[0]:
            self.error(node, f"{node.op}() {what}= must be an agent call")

    op_beam = search
    op_tree = search

    def op_refine(self, node: Node) -> Type:
        self.no_kwargs(node)
        self.int_args(node)
        draft = node.region("draft")
        if draft is None or node.attrs.get("num_positional", 0) != 1:
            self.error(
                node,
                "refine() takes one draft call, e.g. refine(writer(task), critique=..., revise=..., rounds=2)",
            )
            return ANY
        (draft_type,) = self.region(draft, [])
        self.require_call(node, draft, "the draft")
        if node.region("revise") is not None and self.extra_pass_budget > 0:
            # From round 2 on, `_` is a revised draft: type the rounds with both kinds.
            with self.muted():
                revised = self.refine_rounds(node, draft_type)
            draft_type = unify(draft_type, revised)  # a different reviser keeps the common fields
        revised = self.refine_rounds(node, draft_type, report=True)
        draft_type = unify(draft_type, revised)
        return draft_type.with_fields(("rounds", INTEGER)) if draft_type.kind == "record" else ANY

    def refine_rounds(self, node: Node, draft_type: Type, report: bool = False) -> Type:
        """Type one critique/revise/stop round over `draft_type`; return the revised type."""
        critique_type: Type = ANY
        if (critique := node.region("critique")) is not None:
            (critique_type,) = self.region(critique, [draft_type])
            self.require_call(node, critique, "critique")
        elif report and self.not_misspelt(node, "critique"):
            self.error(node, "refine() needs critique=<call over _>")
        revised = draft_type
        if (revise := node.region("revise")) is not None:
            (revised,) = self.region(revise, [draft_type, critique_type])
            self.require_call(node, revise, "revise")
        elif report and self.not_misspelt(node, "revise"):
            self.error(node, "refine() needs revise=<call over _ and _critique>")
        if (stop := node.region("stop")) is not None:
            self.region(stop, [unify(draft_type, revised), critique_type])
        return revised

    # -- control flow -----------------------------------------------------------

    def carried(self, node: Node, yields: list[list[Type]]) -> Type:
        names = node.attrs["carried"]
        fields = []
        for i, name in enumerate(names):
            merged = yields[0][i]
            for other in yields[1:]:
                merged = unify(merged, other[i])
            fields.append((name, merged))
        return record(*fields)

    def op_if(self, node: Node) -> Type:
        return self.carried(node, [self.region(r, []) for r in node.regions])

    def loop_body(self, node: Node, first: list[Type]) -> Type:
        """Type the loop's regions with the carried types every iteration can see.

        Trial passes feed each carried value's type at the end of the body back into
        its start until nothing changes; a list that grows by the same number of
        items per iteration gets the bound it reaches after the last iteration (any
        other growth makes it unbounded). The final pass reports errors.
        """
        num_carried = len(node.attrs["carried"])
        initial = [self.t(v) for v in node.inputs[len(node.inputs) - num_carried :]]
        iterations = loop_iterations(node)
        state = initial
        growth: dict[int, int] = {}  # carried index -> items added per iteration
        for _ in range(MAX_TYPE_PASSES):
            if self.extra_pass_budget <= 0:
                break
            with self.muted():
                out = self.loop_regions(node, first, state)
            merged = []
            for i, (before, after) in enumerate(zip(state, out, strict=True)):
                merged.append(self.widen(i, initial[i], before, after, iterations, growth))
            if merged == state:
                break
            changing = [m != t for m, t in zip(merged, state, strict=True)]
            state = merged
        else:
            # No fixed point within the passes (a list nested in a record that grows,
            # a record that nests deeper every iteration): what is still changing is
            # unknown, so no bound taken from an unfinished type can undercount calls.
            state = [ANY if c else t for c, t in zip(changing, state, strict=True)]
        out = self.loop_regions(node, first, state)
        for i in growth:  # an extrapolated bound already counts the last iteration
            if state[i].kind == "list" and state[i].bound is not None:
                out[i] = state[i]
        return self.carried(node, [state, out])

    def loop_regions(self, node: Node, first: list[Type], carried_in: list[Type]) -> list[Type]:
        results: list[Type] = []
        for region in node.regions:
            extra = first if region.name == "body" else []
            results = self.region(region, extra + carried_in)
        return results  # the body's yields (the body is the last region)

    @staticmethod
    def widen(
        i: int, initial: Type, before: Type, after: Type, iterations: int, growth: dict[int, int]
    ) -> Type:
        merged = unify(before, after)
        if not (before.kind == after.kind == "list") or before.bound is None:
            return merged
        if after.bound is None:
            return merged
        step = after.bound - before.bound
        if step <= 0:
            return merged
        if i not in growth:
            growth[i] = step
            bound = (initial.bound or 0) + iterations * step
            return list_of(merged.item or ANY, bound)
        if step == growth[i] and before.bound == (initial.bound or 0) + iterations * step:
            return before  # the extrapolated bound is consistent: a fixed point
        return list_of(merged.item or ANY, None)  # growth that is not linear

    def op_for(self, node: Node) -> Type:
        items = self.t(node.inputs[0])
        if items.kind not in ("list", "any"):
            self.error(node, f"for needs a list, not {items}")
        else:
            node.attrs["bound"] = self.require_bound(node, "for")
        return self.loop_body(node, [items.item or ANY if items.kind == "list" else ANY])

    def op_repeat(self, node: Node) -> Type:
        if not 1 <= node.attrs["count"] <= MAX_SAMPLES:
            self.error(node, f"repeat count must be between 1 and {MAX_SAMPLES}")
        return self.loop_body(node, [])

    def op_while(self, node: Node) -> Type:
        if not 1 <= node.attrs["max_iterations"] <= MAX_SAMPLES:
            self.error(node, f"while 'max' must be between 1 and {MAX_SAMPLES}")
        return self.loop_body(node, [])


def _params(info: AgentInfo) -> str:
    return ", ".join(info.params) if info.params else "no parameters"


def resolve(
    graph: Graph, spec: Spec, doc: SourceDoc, agents: dict[str, AgentInfo]
) -> list[Diagnostic]:
    """Type and check `graph` in place; return every problem found (errors and warnings)."""
    resolver = _Resolver(spec, doc, agents)
    resolver.region(graph.body, [])
    diagnostics = resolver.diagnostics
    diagnostics += _check_returns(graph, doc)
    diagnostics += _check_agents(graph, spec, doc)
    return diagnostics


def _check_returns(graph: Graph, doc: SourceDoc) -> list[Diagnostic]:
    if any(node.op == "return" for node in graph.body.nodes):
        return []
    flow = doc.data.get("flow", "") if isinstance(doc.data, dict) else ""
    span = doc.span_in_string(("flow",), len(flow.rstrip()))  # just after the last statement
    return [doc.diagnostic("error", "the flow has no 'return'; end it with: return <value>", span)]


def _check_agents(graph: Graph, spec: Spec, doc: SourceDoc) -> list[Diagnostic]:
    out: list[Diagnostic] = []
    for name, agent in spec.agents.items():
        if name in BUILTINS:
            out.append(
                doc.diagnostic(
                    "error",
                    f"agent name '{name}' is a built-in; choose another",
                    doc.span(("agents", name), key=True),
                )
            )
        for i, callee in enumerate(agent.calls):
            if callee not in spec.agents:
                out.append(
                    doc.diagnostic(
                        "error",
                        f"agent '{name}' may call unknown agent '{callee}'",
                        doc.span(("agents", name, "calls", i)),
                        did_you_mean(callee, spec.agents),
                    )
                )
    out += _delegation_cycles(spec, doc)
    called = {node.agent for node, _ in graph.calls()}
    reachable = set(called)
    frontier = list(called)
    while frontier:
        agent = spec.agents.get(frontier.pop())
        for callee in agent.calls if agent else ():
            if callee not in reachable:
                reachable.add(callee)
                frontier.append(callee)
    for name in spec.agents:
        if name not in reachable:
            out.append(
                doc.diagnostic(
                    "warning",
                    f"agent '{name}' is never called",
                    doc.span(("agents", name), key=True),
                )
            )
    return out


def _delegation_cycles(spec: Spec, doc: SourceDoc) -> list[Diagnostic]:
    """Delegation (`calls`) must be acyclic: a cycle has no bound on its calls."""
    state: dict[str, int] = {}  # 1 = on the stack, 2 = done
    out: list[Diagnostic] = []

    def visit(name: str, stack: list[str]) -> None:
        state[name] = 1
        for callee in spec.agents[name].calls:
            if callee not in spec.agents:
                continue
            if state.get(callee) == 1:
                cycle = (
                    stack[stack.index(callee) :] + [callee] if callee in stack else [name, callee]
                )
                out.append(
                    doc.diagnostic(
                        "error",
                        f"delegation cycle: {' -> '.join(cycle)}",
                        doc.span(("agents", name, "calls")),
                    )
                )
            elif callee not in state:
                visit(callee, [*stack, callee])
        state[name] = 2

    for name in spec.agents:
        if name not in state:
            visit(name, [name])
    return out
