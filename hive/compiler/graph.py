"""Draw a plan's flow graph as Graphviz dot or Mermaid.

Agent calls are boxes (with the agent and its contribution), combinators are
hexagons, data nodes are small ellipses (`const` and `field` nodes are folded
into their users to keep the picture readable), Logits Cache nodes are
cylinders attached to the calls they serve, and regions are clusters.
"""

from __future__ import annotations

from hive.compiler.ir import CALL_OPS, Node, Region
from hive.compiler.plan import Plan

COMBINATOR_OPS = {
    "vote",
    "best",
    "map",
    "beam",
    "tree",
    "refine",
    "join",
    "if",
    "for",
    "repeat",
    "while",
}
_HIDDEN = {"const", "field", "param"}


def _label(node: Node, plan: Plan) -> str:
    if node.op in CALL_OPS:
        p = plan.priorities.agents.get(node.agent)
        share = f"\\ncontribution {p.contribution:.2f}" if p else ""
        times = f" x{node.attrs['n']}" if node.op == "sample" else ""
        times = f" max {node.attrs['max_attempts']}" if node.op == "resample" else times
        return f"{node.op} {node.agent}{times}{share}"
    a = node.attrs
    match node.op:
        case "input":
            return f"input {a['name']}"
        case "vote" | "best":
            by = f" by {a['by_field']}" if "by_field" in a else ""
            return f"{node.op}{by}"
        case "binop" | "unop":
            return a["op"]
        case "record":
            return "{" + ", ".join(a["keys"]) + "}"
        case "builtin":
            return f"{a['name']}()"
        case "beam" | "tree" | "refine" | "repeat" | "while":
            ints = ", ".join(
                f"{k}={v}"
                for k, v in a.items()
                if isinstance(v, int) and not isinstance(v, bool) and k != "num_positional"
            )
            return f"{node.op} {ints}".strip()
    return node.op


class _Drawer:
    def __init__(self, plan: Plan):
        self.plan = plan
        self.alias: dict[int, int] = {}  # hidden node -> the visible node it stands for
        self.visible: set[int] = set()

    def source(self, value: int) -> int | None:
        seen = value
        while seen in self.alias:
            seen = self.alias[seen]
        return seen if seen in self.visible else None

    def collect(self, region: Region) -> None:
        for node in region.nodes:
            if node.op in _HIDDEN:
                if node.inputs:
                    self.alias[node.id] = node.inputs[0]
                continue
            self.visible.add(node.id)
            for sub in node.regions:
                self.collect(sub)


def _edges(drawer: _Drawer, region: Region, out: list[tuple[int, int]]) -> None:
    for node in region.nodes:
        if node.id in drawer.visible:
            for value in node.inputs:
                src = drawer.source(value)
                if src is not None and (src, node.id) not in out:
                    out.append((src, node.id))
        for sub in node.regions:
            _edges(drawer, sub, out)
            for y in sub.yields:
                src = drawer.source(y)
                if src is not None and src != node.id and (src, node.id) not in out:
                    out.append((src, node.id))


def to_dot(plan: Plan) -> str:
    drawer = _Drawer(plan)
    drawer.collect(plan.graph.body)
    lines = [
        f'digraph "{plan.spec.name}" {{',
        "  rankdir=TB;",
        '  node [fontname="Helvetica", fontsize=10];',
    ]

    def emit(region: Region, depth: int) -> None:
        pad = "  " * depth
        for node in region.nodes:
            if node.id not in drawer.visible:
                continue
            label = _label(node, plan).replace('"', '\\"')
            shape = (
                "box"
                if node.op in CALL_OPS
                else "hexagon"
                if node.op in COMBINATOR_OPS
                else "ellipse"
            )
            style = ', style="rounded,filled", fillcolor="#dbeafe"' if node.op in CALL_OPS else ""
            lines.append(f'{pad}n{node.id} [label="{label}", shape={shape}{style}];')
            for sub in node.regions:
                if not any(n.id in drawer.visible for n in sub.nodes):
                    continue
                lines.append(f"{pad}subgraph cluster_{node.id}_{sub.name} {{")
                lines.append(f'{pad}  label="{node.op} {sub.name}"; style=dashed;')
                emit(sub, depth + 1)
                lines.append(f"{pad}}}")

    emit(plan.graph.body, 1)
    edges: list[tuple[int, int]] = []
    _edges(drawer, plan.graph.body, edges)
    lines += [f"  n{a} -> n{b};" for a, b in edges]
    for c in plan.graph.cache_nodes:
        label = f"logits cache\\n{c.scope}, {c.max_paths} paths"
        lines.append(
            f'  lc{c.target} [label="{label}", shape=cylinder, style=filled, fillcolor="#fef3c7"];'
        )
        lines.append(f"  lc{c.target} -> n{c.target} [style=dotted, arrowhead=none];")
    lines.append("}")
    return "\n".join(lines) + "\n"


def to_mermaid(plan: Plan) -> str:
    drawer = _Drawer(plan)
    drawer.collect(plan.graph.body)
    lines = ["flowchart TD"]

    def text(node: Node) -> str:
        return _label(node, plan).replace("\\n", "<br/>").replace('"', "#quot;")

    def emit(region: Region, depth: int) -> None:
        pad = "  " * depth
        for node in region.nodes:
            if node.id not in drawer.visible:
                continue
            if node.op in CALL_OPS:
                lines.append(f'{pad}n{node.id}(["{text(node)}"])')
            elif node.op in COMBINATOR_OPS:
                lines.append(f'{pad}n{node.id}{{{{"{text(node)}"}}}}')
            else:
                lines.append(f'{pad}n{node.id}["{text(node)}"]')
            for sub in node.regions:
                if not any(n.id in drawer.visible for n in sub.nodes):
                    continue
                lines.append(f'{pad}subgraph r{node.id}_{sub.name}["{node.op} {sub.name}"]')
                emit(sub, depth + 1)
                lines.append(f"{pad}end")

    emit(plan.graph.body, 1)
    edges: list[tuple[int, int]] = []
    _edges(drawer, plan.graph.body, edges)
    lines += [f"  n{a} --> n{b}" for a, b in edges]
    for c in plan.graph.cache_nodes:
        lines.append(f'  lc{c.target}[("logits cache<br/>{c.scope}, {c.max_paths} paths")]')
        lines.append(f"  lc{c.target} -.- n{c.target}")
    lines.append("  classDef call fill:#dbeafe,stroke:#1d4ed8")
    lines.append("  classDef cache fill:#fef3c7,stroke:#b45309")
    calls = [f"n{n.id}" for n in plan.graph.nodes() if n.op in CALL_OPS and n.id in drawer.visible]
    if calls:
        lines.append(f"  class {','.join(calls)} call")
    if plan.graph.cache_nodes:
        lines.append(f"  class {','.join(f'lc{c.target}' for c in plan.graph.cache_nodes)} cache")
    return "\n".join(lines) + "\n"
