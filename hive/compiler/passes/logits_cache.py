"""Pass 3, `logits_cache`: mark calls that sample one context many times.

Such calls get a `CacheNode` naming the call, why its paths repeat (its
scope), how many paths at most, and what its cache key is made of. The
runtime's Logits Cache reuses next-token distributions along those paths.

Each node carries the mode the runtime uses for the call: the agent's
`sampling.logits_cache` when it names one, else `exact`; an agent with `off`
gets no nodes.

Scopes:
- samples:    `sample call x N`: N paths over one rendered prompt.
- resample:   `resample call until ... max K`: up to K sequential paths.
- candidates: the inputs of `vote`/`best` built from identical calls.
- expansion:  the `expand` call of `beam`/`tree`: each state is expanded
              several times from one context.
- loop:       a call inside a loop whose arguments do not change between
              iterations.
"""

from __future__ import annotations

from hive.compiler.ir import CALL_OPS, LOOP_OPS, CacheNode, Graph, Node, Region, loop_iterations
from hive.compiler.spec import Spec


def _key(node: Node, spec: Spec) -> list[str]:
    agent = spec.agents[node.agent]
    s = agent.sampling
    sampling = f"temperature={s.temperature},top_p={s.top_p},top_k={s.top_k},min_p={s.min_p}"
    if (s.repetition_penalty, s.frequency_penalty, s.presence_penalty) != (1.0, 0.0, 0.0):
        sampling += f",penalties={s.repetition_penalty}/{s.frequency_penalty}/{s.presence_penalty}"
    args = ",".join(sorted(node.attrs["arg_names"]))  # keyword order does not change the prompt
    return [
        f"model={agent.model or spec.model}",
        f"prompt={node.agent}({args})",
        f"sampling({sampling})",
    ]


def mark_logits_cache(graph: Graph, spec: Spec) -> list[CacheNode]:
    """Attach a CacheNode to every repeating call; return the new nodes."""
    marked: dict[int, CacheNode] = {}
    nodes = graph.node_map()

    def mark(node: Node, scope: str, paths: int) -> None:
        if node.agent not in spec.agents or paths < 2 or node.id in marked:
            return
        chosen = spec.agents[node.agent].sampling.logits_cache
        if chosen == "off":
            return
        marked[node.id] = CacheNode(node.id, scope, paths, _key(node, spec), chosen or "exact")

    for node, parents in graph.walk():
        if node.op == "sample":
            mark(node, "samples", node.attrs["n"])
        elif node.op == "resample":
            mark(node, "resample", node.attrs["max_attempts"])
        elif node.op in ("beam", "tree"):
            expand = node.region("expand")
            paths = (
                node.attrs.get("branch", node.attrs.get("width"))
                if node.op == "beam"
                else node.attrs.get("breadth")
            )
            for call in _calls(expand):
                mark(call, "expansion", paths or 0)
        elif node.op in ("vote", "best") and node.inputs:
            _mark_candidates(nodes.get(node.inputs[0]), nodes, mark)
        elif node.op in CALL_OPS and parents:
            bound = _invariant_loop_bound(node, parents, nodes)
            if bound:
                mark(node, "loop", bound)
    graph.cache_nodes = sorted(marked.values(), key=lambda c: c.target)
    return graph.cache_nodes


def _calls(region: Region | None) -> list[Node]:
    return [n for n in region.nodes if n.op in CALL_OPS] if region else []


def _mark_candidates(source: Node | None, nodes: dict[int, Node], mark) -> None:
    """`vote([a(x), a(x), a(x)], ...)` or a join of identical spawns: one context, many paths."""
    if source is None or source.op not in ("list", "join"):
        return
    calls = [nodes.get(i) for i in source.inputs]
    if not calls or any(c is None or c.op not in ("call", "spawn") for c in calls):
        return
    if len({c.id for c in calls}) < len(calls):  # `[r, r, r]`: one call, listed three times
        return
    first = calls[0]
    if all(c.agent == first.agent and _bound_args(c) == _bound_args(first) for c in calls):
        for call in calls:
            mark(call, "candidates", len(calls))


def _bound_args(call: Node) -> list[tuple[str, int]]:
    """What the prompt is rendered from: each parameter and the value bound to it."""
    return sorted(zip(call.attrs["arg_names"], call.inputs, strict=True))


def _invariant_loop_bound(node: Node, parents: tuple[Node, ...], nodes: dict[int, Node]) -> int:
    """Iterations of the innermost enclosing loop, if the call's inputs are all defined
    outside it (so every iteration renders the same prompt); 0 otherwise."""
    loop = next((p for p in reversed(parents) if p.op in LOOP_OPS), None)
    if loop is None:
        return 0
    inside: set[int] = set()  # every value defined in the loop, nested lambdas' `_` included
    for region in loop.regions:
        for sub in _regions(region):
            inside.update(sub.params)
            inside.update(n.id for n in sub.nodes)
    if any(v in inside for v in node.inputs):
        return 0
    return loop_iterations(loop)


def _regions(region: Region):
    """`region` and every region nested in it."""
    yield region
    for node in region.nodes:
        for sub in node.regions:
            yield from _regions(sub)
