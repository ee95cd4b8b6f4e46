"""Per-agent compute shares: batch slots and prefill tokens by contribution.

Among the agents with work this step (requests running, or waiting and not
parked), agent a's share is

    share(a) = FLOOR / n + (1 - FLOOR) * c(a) / sum c        (n such agents)

with c from `AgentLedger.contributions` (equal shares while every c is 0).
Its entitlement: share(a) * max_running_requests batch slots, and share(a) of
the step's prefill tokens (what the decode rows leave of max_batch_tokens).
The floor keeps every agent with work at a positive share, so none starves
behind a heavier one; shares are renormalised over the agents with work, so an
idle agent's share goes to the others.

The scheduler uses entitlements in two passes (scheduler.py): first the
prefill chunks and admissions within each agent's entitlement, then, lending,
whatever budget and slots are left, first come first served. So a burst of one
agent's calls cannot take every slot and every prefill token from the others,
and no capacity is left unused. When lent slots are full and an agent under
its entitlement waits, the agent furthest over its entitlement gives a slot
back: its request that would give way first in the
decode loop too (lowest effective priority, then youngest; never one above the
asker's priority) is preempted, and its K/V goes to the radix cache, so it
resumes from there.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field

from hive.runtime.engine.agent_stats import AgentLedger, agent_name
from hive.runtime.engine.request import Request

FLOOR = 0.2  # the part of capacity split equally among agents with work
STARVE_STEPS = 128  # a request waiting this many steps on end goes before any share


def agent_key(req: Request) -> str:
    return agent_name(req.agent_id)


@dataclass
class Entitlements:
    """One step's entitlements; `tokens` and `running` are updated as the step fills."""

    shares: dict[str, float]
    slots: dict[str, float]  # batch slots agent a is entitled to
    running: Counter[str]  # a's running requests, including those admitted this step
    tokens: dict[str, int] = field(default_factory=dict)  # a's prefill tokens left (pass 1)

    def set_prefill_budget(self, budget: int) -> None:
        self.tokens = {a: math.ceil(s * budget) for a, s in self.shares.items()}

    def token_allowance(self, agent: str) -> int:
        return self.tokens.get(agent, 0)

    def take(self, agent: str, tokens: int) -> None:
        self.tokens[agent] = self.tokens.get(agent, 0) - tokens

    def under_slots(self, agent: str) -> bool:
        return self.running[agent] < self.slots.get(agent, 0.0)

    def over_agent(self) -> str | None:
        """The agent furthest over its slot entitlement that would stay at or above it
        after giving one slot back; None when there is none."""
        best, best_excess = None, 0.0
        for agent, count in self.running.items():
            excess = count - self.slots.get(agent, 0.0)
            if count - 1 >= self.slots.get(agent, 0.0) and excess > best_excess:
                best, best_excess = agent, excess
        return best


class AgentShares:
    def __init__(self, ledger: AgentLedger, max_running_requests: int) -> None:
        self.ledger = ledger
        self.max_running_requests = max_running_requests

    def shares(self, agents: set[str]) -> dict[str, float]:
        contributions = self.ledger.contributions()
        values = {a: contributions.get(a, 0.0) for a in agents}
        total = sum(values.values())
        n = len(agents)
        return {
            a: FLOOR / n + (1 - FLOOR) * (v / total if total > 0 else 1 / n)
            for a, v in values.items()
        }

    def entitlements(self, running: list[Request], waiting: list[Request]) -> Entitlements | None:
        """This step's entitlements; None when fewer than two agents have work (then
        shares change nothing and admission is plain first come, first served)."""
        counts = Counter(agent_key(r) for r in running)
        agents = set(counts) | {agent_key(r) for r in waiting if not r.parked}
        if len(agents) < 2:
            return None
        shares = self.shares(agents)
        return Entitlements(
            shares=shares,
            slots={a: s * self.max_running_requests for a, s in shares.items()},
            running=counts,
        )


def is_starving(req: Request, step: int) -> bool:
    return step - req.waiting_since >= STARVE_STEPS
