"""The compiler's passes, run in order by `run_passes`.

Each pass is a function over the IR that returns what it found; after each,
`verify` checks the IR's invariants and names the pass that broke them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from hive.compiler.agents import AgentInfo
from hive.compiler.errors import Diagnostic
from hive.compiler.ir import CacheNode, Graph, IRError, verify
from hive.compiler.passes.logits_cache import mark_logits_cache
from hive.compiler.passes.prefixes import PrefixGroup, find_prefix_groups
from hive.compiler.passes.priorities import Priorities, compute_priorities
from hive.compiler.passes.resolve import resolve
from hive.compiler.source import SourceDoc
from hive.compiler.spec import Spec

PASS_NAMES = ("resolve", "prefixes", "logits_cache", "priorities")


@dataclass
class PassResults:
    diagnostics: list[Diagnostic]
    prefix_groups: list[PrefixGroup]
    cache_nodes: list[CacheNode]
    priorities: Priorities | None


def _checked(name: str, graph: Graph, run: Callable[[], object]):
    result = run()
    try:
        verify(graph)
    except IRError as exc:
        raise IRError(f"after pass '{name}': {exc}") from exc
    return result


def run_passes(
    graph: Graph, spec: Spec, doc: SourceDoc, agents: dict[str, AgentInfo]
) -> PassResults:
    """Run every pass; later passes run only when `resolve` found no errors."""
    diagnostics = _checked("resolve", graph, lambda: resolve(graph, spec, doc, agents))
    if any(d.severity == "error" for d in diagnostics):
        return PassResults(diagnostics, [], [], None)
    groups = _checked("prefixes", graph, lambda: find_prefix_groups(graph, agents))
    cache_nodes = _checked("logits_cache", graph, lambda: mark_logits_cache(graph, spec))
    priorities = _checked("priorities", graph, lambda: compute_priorities(graph, spec, agents))
    return PassResults(diagnostics, groups, cache_nodes, priorities)
