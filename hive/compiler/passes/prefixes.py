"""Pass 2, `prefixes`: static prompt prefixes and the call sites that share them.

Every call of an agent starts with the same text: its system prompt (when it
has no variables) and its prompt up to the first variable. Call sites whose
static prefixes share a long common start can reuse one computed KV prefix
in the engine's radix cache; this pass groups them and records the shared
length. Lengths are in characters: no tokenizer is known at compile time
(the runtime re-measures in tokens once it has one).
"""

from __future__ import annotations

import os

from pydantic import BaseModel

from hive.compiler.agents import AgentInfo
from hive.compiler.ir import Graph

MIN_SHARED_CHARS = 16  # shorter common starts are not worth a group
# Separates system and user text so a prefix cannot run across the boundary.
_TURN = "\x1e"


class PrefixGroup(BaseModel):
    """Call sites whose static prompt prefixes share `shared_chars` characters."""

    id: str
    agents: list[str]
    calls: list[int]
    shared_chars: int
    preview: str


def static_prefix(info: AgentInfo) -> str:
    if not info.system_is_static:
        return info.system_prefix
    return info.system_prefix + _TURN + info.prompt_prefix


def find_prefix_groups(graph: Graph, agents: dict[str, AgentInfo]) -> list[PrefixGroup]:
    calls_by_agent: dict[str, list[int]] = {}
    for node, _ in graph.calls():
        if node.agent in agents:
            calls_by_agent.setdefault(node.agent, []).append(node.id)
    prefixes = sorted((static_prefix(agents[a]), a) for a in calls_by_agent)
    clusters: list[list[tuple[str, str]]] = []
    shared: list[int] = []
    for prefix, agent in prefixes:
        if clusters:
            common = len(os.path.commonprefix([clusters[-1][-1][0], prefix]))
            if common >= MIN_SHARED_CHARS:
                clusters[-1].append((prefix, agent))
                shared[-1] = min(shared[-1], common)
                continue
        clusters.append([(prefix, agent)])
        shared.append(len(prefix))
    groups = []
    for members, length in zip(clusters, shared, strict=True):
        calls = sorted(c for _, agent in members for c in calls_by_agent[agent])
        if length == 0:
            continue
        text = members[0][0][:length].replace(_TURN, " | ")
        groups.append(
            PrefixGroup(
                id=f"g{len(groups)}",
                agents=sorted(agent for _, agent in members),
                calls=calls,
                shared_chars=length,
                preview=text[:60] + ("..." if len(text) > 60 else ""),
            )
        )
    return groups
