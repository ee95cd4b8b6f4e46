"""Eviction policies for the radix cache, behind one small interface.

A policy ranks evictable radix nodes (unreferenced leaves): the node with
the smallest `key` goes first. Nodes carry what an agent-aware policy needs:
`last_access`, `hit_count`, `agent_ids` (the agents whose requests used the
node) and `priority` (the highest request priority that used it).
"""

from __future__ import annotations

import importlib
import math
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any

from hive.runtime.engine.agent_stats import HOTSPOT_SHARE, agent_name, hotspot_agents
from hive.runtime.engine.errors import EngineError

if TYPE_CHECKING:
    from hive.runtime.engine.agent_stats import AgentLedger, AgentStats
    from hive.runtime.engine.radix_cache import RadixCache, TreeNode


class BaseEvictionPolicy(ABC):
    name: str = "base"
    # Whether the scheduler should mark prefixes computed again after an eviction
    # (`RadixCache.mark_recomputed`, which splits nodes there): only policies that read
    # `TreeNode.recomputed` ask, so the others see the tree they always did.
    uses_recompute_marks: bool = False
    # Whether `residency` reserves anything (kv_residency.py skips its scan otherwise).
    reserves_kv: bool = False

    @abstractmethod
    def key(self, node: TreeNode) -> Any:
        """Sort key of an evictable node; smaller keys are evicted first."""

    def bind(self, ledger: AgentLedger, cache: RadixCache) -> None:  # noqa: B027 (optional)
        """Called once with the engine's per-agent counters and its cache (online policies)."""

    def residency(self, node: TreeNode) -> float:
        """KV residency (kv_residency.py): the level this evictable node is reserved at.
        While other requests run, an admission may evict it only if the `claim` of its
        agent is at least this; -inf: anyone's may. Agent-unaware policies reserve
        nothing."""
        return -math.inf

    def claim(self, agent_id: str | None) -> float:
        """The level up to which an admission of `agent_id` may evict, on `residency`'s
        scale."""
        return math.inf


class LRUPolicy(BaseEvictionPolicy):
    """Least recently used first."""

    name = "lru"

    def key(self, node: TreeNode) -> Any:
        return node.last_access


class LFUPolicy(BaseEvictionPolicy):
    """Least frequently used first; ties broken by recency."""

    name = "lfu"

    def key(self, node: TreeNode) -> Any:
        return (node.hit_count, node.last_access)


def may_be_reused(node: TreeNode, ledger: AgentLedger | None = None) -> bool:
    """Whether a node is worth protecting: it has been reused at least once; or, with
    `ledger` (the plan's priors), it belongs to an agent the plan allows more calls
    (`AgentPrior.max_calls` above its visits so far) and it is either the agent's first
    prompt (still one node with its call's own tail) or a prefix computed again after
    an eviction (`TreeNode.recomputed`: a reuse the cache missed; only the part computed
    before is marked, not the tail).

    A node never reused is most often one call's own suffix (its round's input, its
    output), and protecting those wasted the pages that shared prefixes needed
    (measured on the replay: worse than LRU everywhere); so was protecting every first
    prompt, or every recomputed prefix, without the plan's word that its agent comes
    back. Only the workflow policy asks the plan: it ranks what it protects by next
    use, while contribution-weighted recency would keep every such prompt alike
    (measured: worse than LRU on the coordinator workload)."""
    if node.hit_count > 0:
        return True
    if ledger is None:
        return False
    for agent_id in node.agent_ids:
        prior, stats = ledger.priors.get(agent_id), ledger.agents.get(agent_id)
        if prior is None or prior.max_calls is None or stats is None:
            continue
        if stats.visits < prior.max_calls and (node.recomputed or stats.visits == 1):
            return True
    return False


class AgentPolicy(BaseEvictionPolicy):
    """Contribution-weighted recency: a node is kept as if it had been used
    `PROTECT * interval(a) * weight(a)` calls later, for the most valuable agent `a`
    that used it.

    - interval(a) = calls so far (all agents) / calls of a: how many calls pass, on
      average, between two calls of a, i.e. how long its prefix must survive to be
      reused at all;
    - weight(a) in (0, 1]: a's prompt tokens so far (calls x prompt length: what its
      prefixes cost to recompute) over those of the hotspot threshold (the last agent
      of the top quarter, the rule the hotspot miss rate uses), times the plan's
      priority prior (1 + priority / 10; the executor derives request priorities from
      the compiler's contribution estimate), capped at 1. Hotspot agents get 1.

    So a hot agent's prefix outlives a burst of cold calls until its next call, while a
    cold agent's stale prefix goes first; with no agent information it is LRU. The
    inputs are the engine's online counters (AgentLedger), so it adapts during a run.
    """

    name = "agent"
    PROTECT = 1.5  # call intervals vary: protect a little beyond the mean

    def __init__(self) -> None:
        self.ledger: AgentLedger | None = None
        self.cache: RadixCache | None = None
        self._version = -1
        self._threshold = 0  # prompt tokens of the last hotspot agent

    def bind(self, ledger: AgentLedger, cache: RadixCache) -> None:
        self.ledger, self.cache = ledger, cache
        self._version = -1  # the threshold was another ledger's

    def _aggregates(self, ledger: AgentLedger) -> None:
        """The hotspot threshold, recomputed only after new admissions (one eviction ranks
        many nodes; thousands of agents must not make each key O(agents))."""
        if not ledger.is_current(self._version):
            hotspots = hotspot_agents(ledger.agents)
            self._threshold = ledger.agents[hotspots[-1]].prompt_tokens if hotspots else 0
            self._version = ledger.version

    def key(self, node: TreeNode) -> Any:
        ledger, cache = self.ledger, self.cache
        if ledger is None or cache is None or not node.agent_ids or not may_be_reused(node):
            return node.last_access
        self._aggregates(ledger)
        calls = ledger.total_calls or 1
        ticks_per_call = cache.now / calls  # last_access counts cache uses, not calls
        prior = 1.0 + node.priority / 10
        bonus = 0.0
        for agent_id in node.agent_ids:
            stats = ledger.agents.get(agent_id)
            if stats is None or stats.calls == 0:
                continue
            weight = min(1.0, stats.prompt_tokens / max(self._threshold, 1) * prior)
            bonus = max(bonus, self.PROTECT * calls / stats.calls * weight * ticks_per_call)
        return node.last_access + bonus


OVERDUE = 2.0  # intervals past an agent's predicted call after which it is not expected


class WorkflowPolicy(BaseEvictionPolicy):
    """Steps to execution (after KVFlow), the hot agents' weighted by contribution: the
    node whose agents' next call is furthest away goes first, a hot agent's counting
    nearer for what it contributes; an agent about to run keeps its prefix.

    An agent's next call is predicted from its own rhythm in the workflow: its last
    visit plus its mean interval between visits (counted in visits of all agents, from
    the engine's AgentLedger; a visit is a run of one agent's calls with no other
    agent's between them, so the n samples of a prompt and the calls of concurrent
    copies of a workflow count once). Agents seen once get the plan's expected interval
    (the run's expected calls over the agent's, `AgentPrior.call_interval`), else the
    mean interval of the others (or the number of agents before any is known: a
    workflow's second round looks like its first); an agent more than OVERDUE
    intervals late is not expected any more.

    A node's key is, over its expected agents, the smallest
        (visits until the agent's next call + 1) / w(a)
    For a hot agent (the top HOTSPOT_SHARE of the agents with a contribution, by the
    ledger's contribution) w(a) = wp(a) * wc(a), at least the cold weight below,
    with wp(a) = p(a) / max p, the plan's contribution (`AgentPrior.contribution`;
    0 for an agent the plan does not name, 1 for all without a plan) and
    wc(a) = c(a) / max c, the ledger's (1 while
    every c is 0): a prefix that a hot agent needs two visits from now outranks one a
    cold agent needs next. Both factors, because each alone misleads: the online
    blend reorders agents the plan rates alike while the first calls of a round skew
    its counts, and the plan's guess of a call rate can be wrong. Every other agent
    gets one shared weight, the largest of theirs: among them the order is plain
    steps to execution. Why: eviction takes only the pages it needs, from a victim's
    tail (radix_cache.py), so every evicted page costs one token to recompute
    whatever its prefix's size, and contributions, which grow with prefix size,
    would keep a big, rarely called worker's prefix over a small one needed sooner
    (the coordinator workload: 13% more recomputed than Belady with every agent
    weighted, 0% with this rule; one weight for all: 0%, but the pipeline verifier's
    hotspot miss rate 0.35 instead of 0.001). A hard hot/cold split (1 and 0.5)
    instead made one of three equal agents of a loop hot by a small difference in
    counts (39% over Belady there). Nodes of no expected agent go first; ties: least
    recently used.

    What it protects: `may_be_reused` with the ledger (reused nodes; the first prompt
    and the recomputed prefixes of agents the plan allows more calls). Its residency:
    the top contribution among a node's expected agents, and a call's claim is its own
    agent's contribution, so with `residency` admission, while other requests run, a
    less valuable agent's call waits rather than evict it (kv_residency.py).
    Measured against a claim in the key's own units (w over the call's interval + 1, so that a call may evict what is
    worth less than what it leaves behind): the same hotspot miss rate on copies, 183
    steps instead of 166 (the verifiers then waited for the writers' prefixes).
    """

    name = "workflow"
    uses_recompute_marks = True
    reserves_kv = True

    def __init__(self) -> None:
        self.ledger: AgentLedger | None = None
        self._default_interval = 1.0
        self._top_prior = 0.0
        self._top_contribution = 0.0
        self._hot: set[str] = set()
        self._cold_weight: float | None = None  # shared by the agents not hot
        # The ledger's contributions when aggregated: a new snapshot means aggregate again.
        self._contributions: dict[str, float] = {}

    def bind(self, ledger: AgentLedger, cache: RadixCache) -> None:
        self.ledger = ledger
        self._contributions = {}  # the aggregates were another ledger's: no snapshot is this

    def _aggregates(self, ledger: AgentLedger) -> None:
        # Refreshed with the ledger's contributions (one lag window: `is_current`), and
        # weights read that same snapshot, so a weight stays relative to its top agent.
        contributions = ledger.contributions()
        if contributions is not self._contributions:
            self._contributions = contributions
            intervals = [i for a in ledger.agents.values() if (i := a.call_interval) is not None]
            self._default_interval = (
                sum(intervals) / len(intervals) if intervals else float(len(ledger.agents) or 1)
            )
            self._top_prior = max((p.contribution for p in ledger.priors.values()), default=0.0)
            self._top_contribution = max(contributions.values(), default=0.0)
            ranked = sorted((a for a, c in contributions.items() if c > 0),
                            key=lambda a: (-contributions[a], a))  # fmt: skip
            hot = max(1, round(HOTSPOT_SHARE * len(ranked)))
            self._hot = set(ranked[:hot])
            self._cold_weight = max(
                (self._relative_contribution(a, ledger) for a in ranked[hot:]), default=None
            )

    def _interval(self, agent_id: str, stats: AgentStats | None) -> float:
        """The agent's visits between calls: its rhythm, else the plan's, else the mean."""
        assert self.ledger is not None
        prior = self.ledger.priors.get(agent_id)
        return (
            (stats.call_interval if stats is not None else None)
            or (prior.call_interval if prior is not None else None)
            or self._default_interval
        )

    def _expected(self, node: TreeNode) -> list[tuple[str, float]]:
        """(agent, visits until its predicted next call) for the node's expected agents."""
        ledger = self.ledger
        if ledger is None or not node.agent_ids or not may_be_reused(node, ledger):
            return []
        self._aggregates(ledger)
        now = ledger.total_visits
        expected = []
        for agent_id in node.agent_ids:
            stats = ledger.agents.get(agent_id)
            if stats is None or stats.visits == 0:
                continue
            interval = self._interval(agent_id, stats)
            elapsed = now - stats.last_call
            if elapsed > OVERDUE * interval:
                continue  # its rhythm has stopped: it is not predicted to come back
            expected.append((agent_id, max(0.0, interval - elapsed)))
        return expected

    def _relative_contribution(self, agent_id: str, ledger: AgentLedger) -> float:
        """wp(a) * wc(a), in (0, 1]: the plan's and the online contribution, each relative
        to the top agent's (in the snapshot `_aggregates` took)."""
        prior = ledger.priors.get(agent_id)
        top_prior, top = self._top_prior, self._top_contribution
        wp = (prior.contribution if prior else 0.0) / top_prior if top_prior > 0 else 1.0
        wc = self._contributions.get(agent_id, 0.0) / top if top > 0 else 1.0
        return max(wp * wc, 1e-9)

    def weight(self, agent_id: str) -> float:
        """w(a): a hot agent's relative contribution; the one weight shared by the others."""
        ledger = self.ledger
        assert ledger is not None
        self._aggregates(ledger)
        if self._cold_weight is None:
            return self._relative_contribution(agent_id, ledger)
        if agent_id in self._hot:  # never below the cold agents (a low plan prior)
            return max(self._relative_contribution(agent_id, ledger), self._cold_weight)
        return self._cold_weight

    def _urgency(self, node: TreeNode) -> float:
        """max over the node's expected agents of w(a) / (visits to a's next call + 1)."""
        return max(
            (self.weight(agent_id) / (visits + 1) for agent_id, visits in self._expected(node)),
            default=-math.inf,
        )

    def key(self, node: TreeNode) -> Any:
        urgency = self._urgency(node)
        if urgency == -math.inf:
            return (-math.inf, node.last_access)
        return (-1.0 / urgency, node.last_access)

    def residency(self, node: TreeNode) -> float:
        """The top contribution among the node's expected agents."""
        contributions = self.ledger.contributions() if self.ledger is not None else {}
        return max(
            (contributions.get(agent_id, 0.0) for agent_id, _ in self._expected(node)),
            default=-math.inf,
        )

    def claim(self, agent_id: str | None) -> float:
        """The agent's contribution: a call may evict what its own agent's or less
        valuable agents' calls are expected to use, not what more valuable ones are."""
        if self.ledger is None:
            return math.inf
        return self.ledger.contributions().get(agent_name(agent_id), 0.0)


# name -> "module:Class"; imported on first use so later policies stay cheap to add.
EVICTION_POLICIES: dict[str, str] = {
    "lru": "hive.runtime.engine.eviction:LRUPolicy",
    "lfu": "hive.runtime.engine.eviction:LFUPolicy",
    "agent": "hive.runtime.engine.eviction:AgentPolicy",
    "workflow": "hive.runtime.engine.eviction:WorkflowPolicy",
}


def make_eviction_policy(name: str) -> BaseEvictionPolicy:
    target = EVICTION_POLICIES.get(name)
    if target is None:
        known = ", ".join(sorted(EVICTION_POLICIES))
        raise EngineError(f"unknown eviction policy {name!r}; known: {known}")
    module_name, class_name = target.split(":")
    return getattr(importlib.import_module(module_name), class_name)()
