"""Per-agent counters: calls, prompt tokens, prefix-cache hits, recomputation.

At a request's first admission the scheduler records its prompt: how many
tokens the radix cache served (`hit_tokens`), how many had been computed
before for the same prefix (`reusable_tokens`, from the prefix history of
what reached the cache),
and the difference: tokens computed again because their KV had been
evicted (`recomputed_tokens`). The radix cache adds `evicted_pages` to
every agent that used an evicted node.

Hotspot agents: the top quarter (at least one) by prompt tokens, i.e.
calls x prompt length, the agents whose prefixes are worth most to keep.
Their hotspot miss rate is recomputed / reusable over their calls: 0 when
every reusable prefix was still cached.

Contribution (`AgentLedger.contributions`), what compute shares follow:

    online(a) = prompt + output tokens (the work a's calls bring)
              + prefix-cache hit tokens + Logits Cache replays (the work reuse saved it)
              + recomputed tokens (what evictions cost it)
    c(a) = (PRIOR_CALLS * plan(a) / sum plan + N * online(a) / sum online) / (PRIOR_CALLS + N)

`plan(a)` is the compiler's static estimate (the `priorities` pass: expected
calls, prefix size, critical path, fan-out), carried by a's requests; N is the
number of calls admitted so far. So the plan decides while the engine has seen
little, and what the engine sees takes over after a few dozen calls (a plan's
estimate of loop exits and branches is a guess; the token counts are not).
Agents the plan does not know start from 0 and earn their share online. Every
term is a counter the engine keeps anyway; the whole map is recomputed in
O(agents) at most once per admission (cached on `version`), and with more than
AGGREGATE_REFRESH agents once per agents / AGGREGATE_REFRESH admissions
(`is_current`): thousands of agents cost O(AGGREGATE_REFRESH) per admission,
amortised, not O(agents), and one admission moves none of the aggregates much.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from hive.runtime.engine.errors import InvalidRequestError
from hive.runtime.engine.prefix_history import PrefixHistory

UNTAGGED = "(no agent)"
HOTSPOT_SHARE = 0.25
PRIOR_CALLS = 16  # the plan's estimate weighs as much as this many observed calls


def agent_name(agent_id: str | None) -> str:
    """The ledger's key for `agent_id`: requests without one share UNTAGGED."""
    return agent_id if agent_id is not None else UNTAGGED


@dataclass(frozen=True)
class AgentPrior:
    """What the plan estimates for an agent (the compiler's `priorities` pass), carried
    by its requests: its contribution, its expected calls per run and the run's expected
    calls of all agents (so its expected interval between calls is their ratio), and the
    most calls it can make (every loop at its bound)."""

    contribution: float
    expected_calls: float | None = None
    workflow_calls: float | None = None
    max_calls: int | None = None

    def __post_init__(self) -> None:
        for name in ("contribution", "expected_calls", "workflow_calls", "max_calls"):
            value = getattr(self, name)
            if value is None and name != "contribution":
                continue
            if (
                not isinstance(value, int | float)
                or isinstance(value, bool)
                or not (0 <= value < math.inf)
            ):
                raise InvalidRequestError(f"AgentPrior.{name} must be a number >= 0, got {value!r}")

    @property
    def call_interval(self) -> float | None:
        """Expected calls of all agents between two of this one's; None if unknown."""
        if not self.expected_calls or not self.workflow_calls:
            return None
        return max(1.0, self.workflow_calls / self.expected_calls)


@dataclass
class AgentStats:
    calls: int = 0
    prompt_tokens: int = 0
    hit_tokens: int = 0
    reusable_tokens: int = 0
    recomputed_tokens: int = 0
    evicted_pages: int = 0
    visits: int = 0  # runs of its calls with no other agent's call between them
    first_call: int = 0  # the ledger's visit count at the agent's first and last visits
    last_call: int = 0
    output_tokens: int = 0
    finished_calls: int = 0
    logits_cache_hits: int = 0  # positions replayed from the Logits Cache

    @property
    def call_interval(self) -> float | None:
        """Mean number of visits (of all agents) between two of its own; None before two."""
        if self.visits < 2:
            return None
        return (self.last_call - self.first_call) / (self.visits - 1)

    @property
    def mean_output(self) -> float:
        """Output tokens per finished call (0 before the first finishes)."""
        return self.output_tokens / self.finished_calls if self.finished_calls else 0.0

    @property
    def online_value(self) -> int:
        """Tokens the agent's calls brought, saved by reuse, and lost to eviction."""
        return (
            self.prompt_tokens
            + self.output_tokens
            + self.hit_tokens
            + self.logits_cache_hits
            + self.recomputed_tokens
        )

    @property
    def miss_rate(self) -> float:
        """Recomputed over reusable prefix tokens."""
        return self.recomputed_tokens / self.reusable_tokens if self.reusable_tokens else 0.0


AGGREGATE_REFRESH = 32  # agents per admission that an aggregate over all agents may lag


class AgentLedger:
    def __init__(self, page_size: int) -> None:
        self.history = PrefixHistory(page_size)
        self.agents: dict[str, AgentStats] = {}
        self.version = 0  # bumped on every admission: lets policies cache aggregates
        self.total_calls = 0  # requests admitted (every sample)
        # The clock of call rhythms: one tick per visit, i.e. per admitted call whose
        # agent differs from the previous call's. Samples 2..n of a prompt, and the calls
        # of concurrent copies of a workflow arriving together, are one visit; so an
        # agent's interval is in steps of the workflow, however many copies run.
        self.total_visits = 0
        self._last_agent: str | None = None
        # The plan's estimate per agent, from its requests. Kept apart from `agents`
        # (which holds agents once admitted: the hotspot rule counts those).
        self.priors: dict[str, AgentPrior] = {}
        self._contributions: dict[str, float] = {}
        self._contributions_version = -1

    def of(self, agent_id: str | None) -> AgentStats:
        key = agent_name(agent_id)
        stats = self.agents.get(key)
        if stats is None:
            stats = self.agents[key] = AgentStats()
        return stats

    def record_admission(
        self, agent_id: str | None, prompt: list[int], hit_tokens: int, new_prompt: bool = True
    ) -> int:
        """A request's first admission: `prompt` (the tokens matched against the cache).
        `new_prompt` is False for samples 2..n of one prompt (one call in the rhythm).
        Returns the prompt tokens that had been computed before (reusable).
        What counts as computed before is what reached the cache earlier
        (`history`, filled by the scheduler when it caches computed tokens)."""
        stats = self.of(agent_id)
        reusable = max(self.history.match(prompt), hit_tokens)
        self.version += 1
        self.total_calls += 1
        stats.calls += 1
        key = agent_name(agent_id)
        if new_prompt and key != self._last_agent:
            self._last_agent = key
            self.total_visits += 1
            if stats.visits == 0:
                stats.first_call = self.total_visits
            stats.last_call = self.total_visits
            stats.visits += 1
        stats.prompt_tokens += len(prompt)
        stats.hit_tokens += hit_tokens
        stats.reusable_tokens += reusable
        stats.recomputed_tokens += reusable - hit_tokens
        return reusable

    def record_eviction(self, agent_ids: set[str], num_pages: int) -> None:
        for agent in agent_ids or {UNTAGGED}:
            self.of(agent).evicted_pages += num_pages

    def record_prior(self, agent_id: str | None, prior: AgentPrior | None) -> None:
        """The plan's estimate for `agent_id` (the latest one a request carried)."""
        key = agent_name(agent_id)
        if prior is not None and self.priors.get(key) != prior:
            self.priors[key] = prior
            self.version += 1

    def record_finish(self, agent_id: str | None, output_tokens: int) -> None:
        """A finished request's output tokens, for an admitted agent (a request aborted
        before admission adds none: the hotspot rule counts admitted agents only)."""
        stats = self.agents.get(agent_name(agent_id))
        if stats is not None:
            stats.output_tokens += output_tokens
            stats.finished_calls += 1

    def record_replayed(self, agent_id: str | None, positions: int = 1) -> None:
        """Positions of an admitted agent's request replayed from the Logits Cache."""
        stats = self.agents.get(agent_name(agent_id))
        if stats is not None:
            stats.logits_cache_hits += positions

    def is_current(self, version: int) -> bool:
        """Whether an aggregate over all agents computed at `version` is still to be used:
        until the next admission, or with many agents for agents / AGGREGATE_REFRESH of
        them (amortised O(AGGREGATE_REFRESH) per admission instead of O(agents))."""
        if version < 0:
            return False
        return self.version - version < max(1, len(self.agents) // AGGREGATE_REFRESH)

    def contributions(self) -> dict[str, float]:
        """c(a) for every agent seen (see the module docstring); sums to 1 when any is > 0.
        With many agents it may lag a few admissions (`is_current`): an agent admitted
        since is missing (0, the floor)."""
        if self.is_current(self._contributions_version):
            return self._contributions
        agents, priors = self.agents, self.priors
        prior_total = sum(p.contribution for p in priors.values())
        online = {name: s.online_value for name, s in agents.items()}
        online_total = sum(online.values())
        k = PRIOR_CALLS if prior_total > 0 else 0
        n = self.total_calls if online_total > 0 else 0
        result = {}
        for name in agents.keys() | priors.keys():
            plan = priors[name].contribution / prior_total if k and name in priors else 0.0
            seen = online.get(name, 0) / online_total if n else 0.0
            result[name] = (k * plan + n * seen) / (k + n) if k + n else 0.0
        self._contributions, self._contributions_version = result, self.version
        return result


def hotspot_agents(agents: dict[str, AgentStats], share: float = HOTSPOT_SHARE) -> list[str]:
    """The top `share` of agents (at least one) by prompt tokens; ties by name."""
    ranked = sorted(agents, key=lambda a: (-agents[a].prompt_tokens, a))
    count = max(1, round(share * len(ranked))) if ranked else 0
    return ranked[:count]


def prefix_hit_rate(agents: dict[str, AgentStats]) -> float:
    """Prompt tokens served by the prefix cache over all prompt tokens."""
    prompt = sum(a.prompt_tokens for a in agents.values())
    return sum(a.hit_tokens for a in agents.values()) / prompt if prompt else 0.0


def hotspot_miss_rate(agents: dict[str, AgentStats], hotspots: list[str]) -> float:
    reusable = sum(agents[a].reusable_tokens for a in hotspots if a in agents)
    recomputed = sum(agents[a].recomputed_tokens for a in hotspots if a in agents)
    return recomputed / reusable if reusable else 0.0
