"""KV residency: an admission waits rather than evict a more valuable agent's prefix."""

from __future__ import annotations

import math
import random

import torch
from runtime_helpers import Harness

from hive.runtime.engine.agent_shares import STARVE_STEPS
from hive.runtime.engine.agent_stats import AgentPrior
from hive.runtime.engine.eviction import BaseEvictionPolicy
from hive.runtime.engine.kv_pool import KVPool
from hive.runtime.engine.kv_residency import KVResidency
from hive.runtime.engine.radix_cache import RadixCache
from hive.runtime.engine.replay import replay
from hive.runtime.engine.replay_trace import TraceRequest


class LevelsPolicy(BaseEvictionPolicy):
    """Residency by the node's first token, claims by agent: fixed tables."""

    reserves_kv = True

    def __init__(self, levels, claims):
        self.levels, self.claims = levels, claims

    def key(self, node):
        return node.last_access

    def residency(self, node):
        return self.levels.get(node.token_ids[0], -math.inf)

    def claim(self, agent_id):
        return self.claims.get(agent_id, 0.0)


def test_an_admission_may_evict_only_nodes_reserved_at_or_below_its_claim():
    kv = KVPool(1, 64, 1, 1, 1, torch.float32, "cpu")
    claims = {"hot": 0.6, "warm": 0.3, "cold": 0.1}
    cache = RadixCache(kv.allocator, 1, LevelsPolicy({1: 0.6, 2: 0.3}, claims))
    for first, size in ((1, 10), (2, 5), (3, 4)):  # 3: reserved for nobody
        cache.insert([first] * size, kv.allocator.allocate(size), "a", 0)
    residency = KVResidency(cache)
    assert residency.evictable_pages("hot", cache.root) == 19
    assert residency.evictable_pages("warm", cache.root) == 9
    assert residency.evictable_pages("cold", cache.root) == 4
    assert residency.evictable_pages("unknown agent", cache.root) == 4
    # A request's own matched prefix is locked for it: not pages it can free.
    own = cache.match_prefix([2] * 5).node
    assert residency.evictable_pages("warm", own) == 4


def _copies_trace(rounds=4, critics=4):
    """A verifier with a 300-token system prompt, then `critics` concurrent critic calls
    (a shared 100-token prompt and 100 tokens of their own each), in rounds: the pool
    holds the verifier's prompt and two critics, not four."""
    rng = random.Random(0)

    def tokens(n):
        return [rng.randrange(1, 500) for _ in range(n)]

    verifier_prompt, critic_prompt = tokens(300), tokens(100)
    verifier = AgentPrior(0.6, expected_calls=rounds, workflow_calls=5 * rounds, max_calls=rounds)
    critic = AgentPrior(0.2, expected_calls=4 * rounds, workflow_calls=5 * rounds,
                        max_calls=4 * rounds)  # fmt: skip
    trace = []
    for r in range(rounds):
        trace.append(TraceRequest("verifier", verifier_prompt + tokens(10), [7] * 4, 2 * r,
                                  prior=verifier))  # fmt: skip
        for _ in range(critics):
            trace.append(TraceRequest("critic", critic_prompt + tokens(100), [7] * 4, 2 * r + 1,
                                      prior=critic))  # fmt: skip
    return trace


def test_concurrent_cold_calls_wait_rather_than_evict_the_hotspots_prefix():
    """Eviction alone cannot keep the verifier's prompt: the four critics' own pages
    need it. With `residency` admission the last critics wait for the first two, and
    the verifier's prompt is never computed twice; the agent-unaware scheduler
    recomputes its tail every round (the ~100 pages the critics overflow the pool by),
    whatever the eviction order (Belady's included)."""
    trace = _copies_trace()
    aware = replay(trace, kv_cache_tokens=700, policy="workflow", admission="residency")
    unaware = replay(trace, kv_cache_tokens=700, policy="workflow", admission="fcfs")
    shares = replay(trace, kv_cache_tokens=700, policy="workflow", admission="shares")
    belady = replay(trace, kv_cache_tokens=700, policy="belady", admission="fcfs")
    assert aware.failed == unaware.failed == 0
    assert aware.agents["verifier"].recomputed_tokens == 0
    assert unaware.agents["verifier"].recomputed_tokens >= 3 * 100
    assert belady.agents["verifier"].recomputed_tokens >= 3 * 100
    # Residency is its own admission mode: plain shares admission does not wait.
    assert shares.agents["verifier"].recomputed_tokens > 0 and shares.steps < aware.steps
    assert aware.recomputed_tokens < belady.recomputed_tokens
    # Policies that reserve nothing are not affected by it.
    lru = replay(trace, kv_cache_tokens=700, policy="lru", admission="residency")
    assert (
        lru.recomputed_tokens
        == replay(trace, kv_cache_tokens=700, policy="lru", admission="fcfs").recomputed_tokens
    )


def _hot_prefix_then_cold_request(policy, admission):
    """A hot agent's 100-token prefix cached and expected again, a filler running on and
    on, and a cold request that fits only by evicting the hot prefix."""
    harness = Harness(policy=policy, pool=1000, admission=admission)
    hot = AgentPrior(0.9, expected_calls=10, workflow_calls=12, max_calls=10)
    first = harness.add("hot", prompt_len=100, max_tokens=2, prior=hot)
    harness.run()
    harness.add("filler", prompt_len=10, max_tokens=300, prior=AgentPrior(0.05), seed=1)
    harness.step()
    cold = harness.add("cold", prompt_len=900, max_tokens=2, prior=AgentPrior(0.05), seed=2)
    return harness, first.prompt_ids, cold


def test_a_request_kept_waiting_by_residency_is_admitted_once_it_starves():
    harness, hot_prompt, cold = _hot_prefix_then_cold_request("workflow", "residency")
    cache = harness.scheduler.cache
    start = harness.stats.num_steps
    while not cold.admitted:
        assert cache.match_prefix(hot_prompt, record=False).num_tokens == 100  # kept
        harness.step()
    waited = harness.stats.num_steps - start
    assert STARVE_STEPS <= waited <= STARVE_STEPS + 2
    harness.run()
    # A policy that reserves nothing, with the same admission: it goes at once.
    harness, _, cold = _hot_prefix_then_cold_request("lru", "residency")
    harness.step()
    assert cold.admitted


def test_with_nothing_else_running_a_request_goes_at_once():
    harness, hot_prompt, cold = _hot_prefix_then_cold_request("workflow", "residency")
    filler = next(r for r in harness.scheduler.running if r.agent_id == "filler")
    harness.scheduler.abort(filler)
    harness.step()
    assert cold.admitted
    harness.run()  # its later chunks take the hot prefix's pages: nothing else needs them
    assert cold.finish_reason == "length"
    assert harness.scheduler.cache.match_prefix(hot_prompt, record=False).num_tokens < 100


def test_an_admission_evicts_only_what_it_may_whatever_the_eviction_order():
    """The policy's order would evict the reserved node first (its key is the smallest);
    the gated admission takes the unreserved one instead."""
    claims = {"filler": 1.0, "cold": 0.1}
    policy = LevelsPolicy({1: 0.9, 2: 0.0}, claims)
    policy.key = lambda node: node.token_ids[0]  # node [1...] goes first, [2...] next
    harness = Harness(policy=policy, pool=100, admission="residency")
    cache, allocator = harness.scheduler.cache, harness.scheduler.pool.allocator
    cache.insert([1] * 30, allocator.allocate(30), "hot", 0)
    cache.insert([2] * 30, allocator.allocate(30), "cold", 0)
    harness.add("filler", prompt_len=10, max_tokens=50)
    harness.step()
    cold = harness.add("cold", prompt_len=40, max_tokens=1, seed=3)
    harness.step()
    assert cold.admitted
    assert cache.match_prefix([1] * 30, record=False).num_tokens == 30
    assert cache.match_prefix([2] * 30, record=False).num_tokens < 30


def test_the_summary_follows_a_split_of_a_summarised_node():
    kv = KVPool(1, 64, 1, 1, 1, torch.float32, "cpu")
    cache = RadixCache(kv.allocator, 1, LevelsPolicy({1: 0.3}, {"warm": 0.3}))
    cache.insert([1] * 10, kv.allocator.allocate(10), "a", 0)
    residency = KVResidency(cache)
    assert residency.evictable_pages("warm", cache.root) == 10
    upper = cache.match_prefix([1] * 4, record=False).node  # splits the node at 4
    assert len(upper.page_ids) == 4
    assert residency.evictable_pages("warm", upper) == 6
