"""The flow IR: a graph of nodes with data edges, structured by regions.

Every node defines one value `%id`. Data edges are `inputs` (value ids).
Control structure is explicit and nested: `if`, loops and the test-time-
scaling combinators own `Region`s (then/else, body, until, by, expand, ...)
whose `params` are values bound on entry (the loop variable, `_`) and whose
`yields` are the values they produce. A structured node's own value is a
record of the variables it carries out; `field` nodes read them.

The IR prints as text (`format_graph`) for golden tests and `--emit ir`, and
`verify` checks the invariants every pass relies on.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Annotated, Any

from pydantic import Field

from hive.compiler.errors import Span
from hive.compiler.types import Type

# The opcodes. Agent-calling ops carry `agent` and `arg_names` attributes.
CALL_OPS = frozenset({"call", "sample", "resample", "spawn"})
OPS = CALL_OPS | {
    "input", "const", "param", "unresolved", "unreachable",
    "field", "index", "binop", "unop", "list", "record", "builtin",
    "vote", "best", "map", "beam", "tree", "refine", "join",
    "if", "for", "repeat", "while", "return",
}  # fmt: skip


@dataclass
class Region:
    """A nested block: `params` are bound on entry, `yields` are what it produces."""

    name: str
    params: list[int] = field(default_factory=list)
    param_names: list[str] = field(default_factory=list)
    nodes: list[Node] = field(default_factory=list)
    yields: list[int] = field(default_factory=list)


@dataclass
class Node:
    id: int
    op: str
    inputs: list[int] = field(default_factory=list)
    attrs: dict[str, Any] = field(default_factory=dict)
    type: Type = field(default_factory=lambda: Type("any"))
    span: Span | None = None
    regions: list[Region] = field(default_factory=list)
    # Where each keyword argument is written (every occurrence, in order), so diagnostics
    # point at it. Not part of the plan.
    arg_spans: Annotated[dict[str, list[Span]], Field(exclude=True)] = field(
        default_factory=dict, compare=False, repr=False
    )

    @property
    def agent(self) -> str | None:
        return self.attrs.get("agent")

    def region(self, name: str) -> Region | None:
        return next((r for r in self.regions if r.name == name), None)


@dataclass
class CacheNode:
    """A Logits Cache node: the call at `target` samples one context `max_paths` times."""

    target: int
    scope: str  # samples | resample | candidates | expansion | loop
    max_paths: int
    key: list[str]  # what the cache key is made of
    mode: str = "exact"  # exact | hotspot: how the runtime's Logits Cache serves the call


@dataclass
class Graph:
    body: Region
    cache_nodes: list[CacheNode] = field(default_factory=list)
    num_values: int = 0

    def walk(self) -> Iterator[tuple[Node, tuple[Node, ...]]]:
        """Every node, depth first in program order, with the structured nodes enclosing it."""
        yield from _walk(self.body, ())

    def nodes(self) -> Iterator[Node]:
        for node, _ in self.walk():
            yield node

    def node_map(self) -> dict[int, Node]:
        return {node.id: node for node in self.nodes()}

    def calls(self) -> Iterator[tuple[Node, tuple[Node, ...]]]:
        for node, parents in self.walk():
            if node.op in CALL_OPS:
                yield node, parents


def _walk(region: Region, parents: tuple[Node, ...]) -> Iterator[tuple[Node, tuple[Node, ...]]]:
    for node in region.nodes:
        yield node, parents
        for sub in node.regions:
            yield from _walk(sub, (*parents, node))


LOOP_OPS = frozenset({"for", "repeat", "while"})


def loop_iterations(node: Node) -> int:
    """The most times a loop's body runs: `repeat N`, `while ... max N`, or the bound of
    the list a `for` iterates (recorded by `resolve`; 0 while unknown)."""
    assert node.op in LOOP_OPS, node.op
    if node.op == "for":
        return node.attrs.get("bound") or 0
    if node.op == "repeat":
        return node.attrs["count"]
    return node.attrs["max_iterations"]


class IRError(AssertionError):
    """An IR invariant is broken: a compiler bug, never a user mistake."""


def verify(graph: Graph) -> None:
    """Check the IR's invariants: known ops, unique ids, every use after its definition
    (values defined in a region are visible only inside it), yields defined."""
    seen: set[int] = set()
    visible: set[int] = set()  # values in scope: outer regions' and this region's so far

    def check_region(region: Region) -> None:
        added: list[int] = []  # defined here; they go out of scope when the region ends
        for pid in region.params:
            if pid in seen:
                raise IRError(f"param %{pid} defined twice")
            seen.add(pid)
            visible.add(pid)
            added.append(pid)
        for node in region.nodes:
            if node.op not in OPS:
                raise IRError(f"%{node.id}: unknown op {node.op!r}")
            if node.id in seen:
                raise IRError(f"%{node.id} defined twice")
            for value in node.inputs:
                if value not in visible:
                    raise IRError(f"%{node.id} ({node.op}) uses %{value} before its definition")
            if node.op in CALL_OPS and not node.attrs.get("agent"):
                raise IRError(f"%{node.id}: {node.op} without an agent")
            for sub in node.regions:
                check_region(sub)
            seen.add(node.id)
            visible.add(node.id)
            added.append(node.id)
        for value in region.yields:
            if value not in visible:
                raise IRError(f"region {region.name!r} yields undefined %{value}")
        visible.difference_update(added)

    check_region(graph.body)


# -- text form ------------------------------------------------------------------


def format_graph(graph: Graph, annotations: dict[int, list[str]] | None = None) -> str:
    """The IR as text, one node a line; `annotations` adds `; notes` after a node."""
    lines: list[str] = []
    _format_region(graph.body, 0, lines, annotations or {})
    for c in graph.cache_nodes:
        lines.append(
            f"logits_cache @%{c.target} scope={c.scope} mode={c.mode} max_paths={c.max_paths} key=[{', '.join(c.key)}]"
        )
    return "\n".join(lines) + "\n"


def format_node(node: Node) -> str:
    args = ", ".join(f"%{i}" for i in node.inputs)
    attrs = node.attrs
    if node.op in CALL_OPS:
        names = attrs.get("arg_names", [])
        bound = ", ".join(f"{n}=%{v}" for n, v in zip(names, node.inputs, strict=True))
        text = f"{node.op} {attrs['agent']}({bound})"
        if node.op == "sample":
            text += f" x {attrs['n']}"
        if node.op == "resample":
            text += f" max {attrs['max_attempts']}"
        return text
    shown = {k: v for k, v in attrs.items() if k != "candidates"}
    extra = " ".join(f"{k}={_show(v)}" for k, v in shown.items())
    return " ".join(part for part in (node.op, args, extra) if part)


def _show(value: Any) -> str:
    if isinstance(value, str):
        return repr(value) if not value.isidentifier() else value
    if isinstance(value, list):
        return "[" + ", ".join(_show(v) for v in value) + "]"
    return repr(value)


def _format_region(
    region: Region, depth: int, lines: list[str], notes: dict[int, list[str]]
) -> None:
    pad = "  " * depth
    for node in region.nodes:
        note = notes.get(node.id)
        suffix = f"  ; {'; '.join(note)}" if note else ""
        lines.append(f"{pad}%{node.id} = {format_node(node)} : {node.type}{suffix}")
        for sub in node.regions:
            params = ", ".join(
                f"%{p} {n}" for p, n in zip(sub.params, sub.param_names, strict=True)
            )
            lines.append(f"{pad}  {sub.name}({params}):")
            _format_region(sub, depth + 2, lines, notes)
            if sub.yields:
                lines.append(f"{pad}    yield " + ", ".join(f"%{y}" for y in sub.yields))
