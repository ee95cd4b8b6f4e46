"""Pass 4, `priorities`: each agent's estimated contribution and next-use order.

For every agent:
- `max_calls`: a hard bound (every loop and combinator at its limit);
- `expected_calls`: loops and combinators with an exit condition (`resample
  ... until`, `while`, `refine ... stop=`) are assumed to succeed with
  probability 1/2 per attempt, so K attempts cost 2(1 - 2^-K) on average;
  `if` branches are taken with equal probability;
- `fan_in` / `fan_out`: distinct agents whose results flow into / out of
  its calls (plus declared `calls` delegation for fan-out);
- `critical`: whether one of its calls lies on the flow's critical path
  (the longest chain of dependent call rounds; parallel calls count once);
- `prefix_chars`: its static prompt prefix (from the `prefixes` pass);
- `stages`: the rounds (ASAP schedule of the top-level flow) in which it is
  called; `order` lists agents by first use. Workflow-aware eviction keeps
  the prefixes of agents whose next stage is nearest.

`contribution` combines them (normalised to sum to 1):
    expected_calls * (1 + prefix_chars / 256) * (1.5 if critical else 1)
    * (1 + 0.25 * fan_out) * (priority hint / 5, when the spec gives one)
Expected calls dominate (a hot agent's prefix is reused most); the prefix
size scales the value of keeping its KV; the critical path and fan-out mark
agents whose delay holds others back.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pydantic import BaseModel

from hive.compiler.agents import AgentInfo
from hive.compiler.ir import CALL_OPS, LOOP_OPS, Graph, Node, Region, loop_iterations
from hive.compiler.passes.prefixes import static_prefix
from hive.compiler.spec import Spec


class AgentPriority(BaseModel):
    """The compiler's static estimate of one agent's share of the work."""

    max_calls: int
    expected_calls: float
    fan_in: int
    fan_out: int
    critical: bool
    prefix_chars: int
    stages: list[int]
    contribution: float
    hint: int | None = None


class Priorities(BaseModel):
    agents: dict[str, AgentPriority]
    order: list[str]
    max_calls: int
    expected_calls: float
    critical_path_rounds: int


def _geometric(k: int) -> float:
    return 2.0 * (1.0 - 0.5**k)


@dataclass
class _Count:
    max: dict[str, float] = field(default_factory=dict)
    expected: dict[str, float] = field(default_factory=dict)
    total_max: float = 0.0
    total_expected: float = 0.0

    def add(self, other: _Count, k_max: float, k_exp: float) -> None:
        for a, v in other.max.items():
            self.max[a] = self.max.get(a, 0) + v * k_max
        for a, v in other.expected.items():
            self.expected[a] = self.expected.get(a, 0) + v * k_exp
        self.total_max += other.total_max * k_max
        self.total_expected += other.total_expected * k_exp

    def call(self, agent: str, k_max: float, k_exp: float) -> None:
        self.max[agent] = self.max.get(agent, 0) + k_max
        self.expected[agent] = self.expected.get(agent, 0) + k_exp
        self.total_max += k_max
        self.total_expected += k_exp


def _count_region(region: Region | None) -> _Count:
    total = _Count()
    for node in region.nodes if region else ():
        _count_node(node, total)
    return total


def _count_node(node: Node, total: _Count) -> None:
    a = node.attrs
    sub = {r.name: _count_region(r) for r in node.regions}
    op = node.op
    if op in ("call", "spawn"):
        total.call(node.agent, 1, 1)
    elif op == "sample":
        total.call(node.agent, a["n"], a["n"])
    elif op == "resample":
        k = a["max_attempts"]
        total.call(node.agent, k, _geometric(k))
        total.add(sub["until"], k, _geometric(k))
    elif op == "map":
        n = node.type.bound or 0
        total.add(sub["each"], n, n)
    elif op in ("best", "vote") and "by" in sub:
        n = node.attrs.get("num_candidates") or 0
        total.add(sub["by"], n, n)
    elif op in ("beam", "tree"):
        depth = a.get("depth") or 0
        if op == "beam":
            width = a.get("width") or 0
            fan = a.get("branch") or width
        else:
            fan = a.get("breadth") or 0
            width = a.get("keep") or fan
        expansions = fan + max(depth - 1, 0) * width * fan
        total.add(sub.get("expand", _Count()), expansions, expansions)
        total.add(sub.get("score", _Count()), expansions, expansions)
    elif op == "refine":
        rounds = a.get("rounds") or 0
        expected = _geometric(rounds) if "stop" in sub else rounds
        total.add(sub.get("draft", _Count()), 1, 1)
        for name in ("critique", "revise", "stop"):
            total.add(sub.get(name, _Count()), rounds, expected)
    elif op == "if":
        then, orelse = sub["then"], sub["else"]
        for a_name in set(then.max) | set(orelse.max):
            total.max[a_name] = total.max.get(a_name, 0) + max(
                then.max.get(a_name, 0), orelse.max.get(a_name, 0)
            )
            total.expected[a_name] = total.expected.get(a_name, 0) + 0.5 * (
                then.expected.get(a_name, 0) + orelse.expected.get(a_name, 0)
            )
        total.total_max += max(then.total_max, orelse.total_max)
        total.total_expected += 0.5 * (then.total_expected + orelse.total_expected)
    elif op in LOOP_OPS:
        k_max = loop_iterations(node)
        k_exp = _geometric(k_max) if op == "while" else k_max
        for region_count in sub.values():
            total.add(region_count, k_max, k_exp)


# -- latency (rounds of dependent calls) -----------------------------------------


class _Timing:
    """Latency in rounds of dependent calls, memoised per node and region (nested
    loops would otherwise recompute their bodies once per enclosing iteration)."""

    def __init__(self) -> None:
        self.nodes: dict[int, int] = {}
        self.regions: dict[int, int] = {}

    def region(self, region: Region | None) -> int:
        if region is None:
            return 0
        key = id(region)
        if key not in self.regions:
            finish: dict[int, int] = {}
            for node in region.nodes:
                start = max((finish.get(v, 0) for v in node.inputs), default=0)
                finish[node.id] = start + self.node(node)
            last = max(finish.values(), default=0)
            self.regions[key] = max((finish.get(v, 0) for v in region.yields), default=last)
        return self.regions[key]

    def node(self, node: Node) -> int:
        if node.id not in self.nodes:
            self.nodes[node.id] = self._compute(node)
        return self.nodes[node.id]

    def _compute(self, node: Node) -> int:
        a = node.attrs
        lat = {r.name: self.region(r) for r in node.regions}
        match node.op:
            case "call" | "sample" | "spawn":
                return 1
            case "resample":
                return a["max_attempts"] * (1 + lat["until"])
            case "map":
                return lat["each"]
            case "best" | "vote":
                return lat.get("by", 0)
            case "beam" | "tree":
                return (a.get("depth") or 0) * (lat.get("expand", 0) + lat.get("score", 0))
            case "refine":
                rounds = a.get("rounds") or 0
                return lat.get("draft", 0) + rounds * (
                    lat.get("critique", 0) + lat.get("revise", 0) + lat.get("stop", 0)
                )
            case "if":
                return max(lat.values(), default=0)
            case "for" | "repeat" | "while":
                return loop_iterations(node) * (lat["body"] + lat.get("cond", 0))
        return 0


MAX_UNROLL = 64  # loop iterations laid out in the next-use schedule
MAX_SCHEDULED_NODES = 200_000  # past this, nested loops are laid out once, not per iteration
MAX_FAN_PASSES = 64  # whole-graph passes for loop-carried data sources (a fixed point)
MAX_STAGES = 256  # stages kept per agent: enough to order next uses, small in the plan


def _schedule(
    region: Region, offset: int, stages: dict[str, set[int]], timing: _Timing, budget: list[int]
) -> None:
    """Record the round in which each agent is called, nested regions included.

    Each node starts when its inputs finish (ASAP); a loop body is laid out once per
    iteration (up to MAX_UNROLL), so a coordinator called every round gets every
    round's stage, which is what next-use eviction needs. `budget` bounds the total
    work, which nested loops would otherwise multiply.
    """
    finish: dict[int, int] = {}
    budget[0] -= len(region.nodes)
    for node in region.nodes:
        start = offset + max(
            (finish.get(v, 0) - offset for v in node.inputs if v in finish), default=0
        )
        finish[node.id] = start + timing.node(node)
        iterations = min(_iterations(node), MAX_UNROLL) if budget[0] > 0 else 1
        step = start
        for _ in range(iterations):
            if node.op in CALL_OPS:  # a resample calls its agent again every attempt
                stages.setdefault(node.agent, set()).add(step)
                step += 1
            # An if's branches are alternatives; other regions run one after another
            # (a loop's condition then body, a search's expand then score).
            for sub in node.regions:
                _schedule(sub, step, stages, timing, budget)
                if node.op != "if":
                    step += timing.region(sub)
            if node.op == "if":
                step += max((timing.region(r) for r in node.regions), default=0)
            step = max(step, start + 1)


def _iterations(node: Node) -> int:
    a = node.attrs
    match node.op:
        case "for" | "repeat" | "while":
            return loop_iterations(node)
        case "resample":
            return a["max_attempts"]
        case "refine":
            return 1
        case "beam" | "tree":
            return a.get("depth") or 0
    return 1


def _agents_in(node: Node) -> set[str]:
    found = {node.agent} if node.op in CALL_OPS else set()
    for region in node.regions:
        for inner in region.nodes:
            found |= _agents_in(inner)
    return found


def compute_priorities(graph: Graph, spec: Spec, agents: dict[str, AgentInfo]) -> Priorities:
    counts = _count_region(graph.body)

    # Critical path and stages over the top-level flow.
    top = graph.body.nodes
    timing = _Timing()
    start: dict[int, int] = {}
    finish: dict[int, int] = {}
    for node in top:
        start[node.id] = max((finish.get(v, 0) for v in node.inputs), default=0)
        finish[node.id] = start[node.id] + timing.node(node)
    by_id = {n.id: n for n in top}
    # Walk back from the return through every predecessor that finishes last
    # (ties included: parallel calls of equal length are all critical).
    critical_agents: set[str] = set()
    end = next((n for n in reversed(top) if n.op == "return"), None)
    frontier = [end] if end is not None else []
    seen: set[int] = set()
    while frontier:
        cursor = frontier.pop()
        if cursor.id in seen:
            continue
        seen.add(cursor.id)
        critical_agents |= _agents_in(cursor)
        preds = [by_id[v] for v in cursor.inputs if v in by_id]
        if preds:
            latest = max(finish[n.id] for n in preds)
            frontier.extend(n for n in preds if finish[n.id] == latest)
    stages: dict[str, set[int]] = {}
    _schedule(graph.body, 0, stages, timing, [MAX_SCHEDULED_NODES])

    fan_in, fan_out = _fan(graph, spec)
    result: dict[str, AgentPriority] = {}
    raw: dict[str, float] = {}
    for name, agent in spec.agents.items():
        info = agents[name]
        prefix_chars = (
            len(static_prefix(info)) - 1 if info.system_is_static else len(info.system_prefix)
        )
        expected = counts.expected.get(name, 0.0)
        score = expected * (1 + prefix_chars / 256) * (1.5 if name in critical_agents else 1.0)
        score *= 1 + 0.25 * len(fan_out.get(name, ()))
        if agent.priority is not None:
            score *= agent.priority / 5
        raw[name] = score
        # model_construct: these values are computed here, not read from a user.
        result[name] = AgentPriority.model_construct(
            max_calls=int(counts.max.get(name, 0)),
            expected_calls=float(round(expected, 3)),
            fan_in=len(fan_in.get(name, ())),
            fan_out=len(fan_out.get(name, ())),
            critical=name in critical_agents,
            prefix_chars=max(prefix_chars, 0),
            stages=sorted(stages.get(name, ()))[:MAX_STAGES],
            contribution=0.0,
            hint=agent.priority,
        )
    norm = sum(raw.values()) or 1.0
    for name, p in result.items():
        p.contribution = round(raw[name] / norm, 4)
    first_call = {}
    for node, _ in graph.calls():
        first_call.setdefault(node.agent, node.id)
    order = sorted(
        (n for n in result if result[n].stages),
        key=lambda n: (result[n].stages[0], first_call.get(n, 0)),
    )
    return Priorities(
        agents=result,
        order=order,
        max_calls=int(counts.total_max),
        expected_calls=round(counts.total_expected, 3),
        critical_path_rounds=max(finish.values(), default=0),
    )


def _union(sets) -> frozenset[str]:
    result: frozenset[str] = frozenset()
    for item in sets:
        result |= item
    return result


def _agents_in_region(region: Region | None) -> set[str]:
    found: set[str] = set()
    for node in region.nodes if region else ():
        found |= _agents_in(node)
    return found


def _fan(graph: Graph, spec: Spec) -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    """Which agents' results flow into each agent's calls (through any data nodes)."""
    sources: dict[int, frozenset[str]] = {}
    fan_in: dict[str, set[str]] = {}

    def visit(region: Region, params: list[frozenset[str]]) -> None:
        for pid, src in zip(region.params, params, strict=True):
            sources[pid] = src
        for node in region.nodes:
            incoming = _union(sources.get(v, frozenset()) for v in node.inputs)
            for sub in node.regions:
                visit_region(node, sub, incoming)
            if node.op in CALL_OPS:
                fan_in.setdefault(node.agent, set()).update(incoming - {node.agent})
                sources[node.id] = frozenset({node.agent})
            else:
                inner = _union(sources.get(v, frozenset()) for r in node.regions for v in r.yields)
                sources[node.id] = incoming | inner

    def visit_region(node: Node, sub: Region, incoming: frozenset[str]) -> None:
        """What flows into a region's parameters: `_` is the combinator's candidate."""
        if node.op in ("for", "repeat", "while"):
            # Each loop-carried value: its initial input, plus what the body yielded for
            # it in the previous whole-graph pass (one visit per region per pass keeps
            # nested loops linear; the outer fixed point adds what later iterations see).
            num_carried = len(node.attrs["carried"])
            initial = node.inputs[len(node.inputs) - num_carried :]
            carried = [
                sources.get(v, frozenset()) | fed_back.get((node.id, i), frozenset())
                for i, v in enumerate(initial)
            ]
            leading = (
                [sources.get(node.inputs[0], frozenset())] if len(sub.params) > num_carried else []
            )
            visit(sub, leading + carried)
            if sub.name == "body":
                for i, v in enumerate(sub.yields):
                    fed_back[(node.id, i)] = carried[i] | sources.get(v, frozenset())
            return
        if node.op == "resample":
            candidate = frozenset({node.agent})
        elif node.op in ("beam", "tree"):
            candidate = frozenset(_agents_in_region(node.region("expand")))
        elif node.op == "refine":
            candidate = frozenset(
                _agents_in_region(node.region("draft")) | _agents_in_region(node.region("revise"))
            )
        else:  # map / best / vote: the elements of the input list
            candidate = incoming
        params = [candidate] * len(sub.params)
        if sub.param_names[1:] == ["_critique"]:
            params[1] = frozenset(_agents_in_region(node.region("critique")))
        visit(sub, params)

    fed_back: dict[tuple[int, int], frozenset[str]] = {}
    for _ in range(MAX_FAN_PASSES):
        before = dict(fed_back)
        fan_in.clear()
        visit(graph.body, [])
        if fed_back == before:
            break
    fan_out: dict[str, set[str]] = {name: set(agent.calls) for name, agent in spec.agents.items()}
    for consumer, producers in fan_in.items():
        for producer in producers:
            fan_out.setdefault(producer, set()).add(consumer)
    return fan_in, fan_out
