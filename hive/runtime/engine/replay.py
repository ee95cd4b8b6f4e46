"""Trace-driven replay of the scheduler and the radix cache, without the model.

A trace is the requests of a workload (agent, prompt ids, the output ids it
generated), in waves (wave w is submitted once every request of earlier
waves has finished: a workflow's rounds) or at the engine steps where the
engine recorded them. The replay runs the engine's own `Scheduler`,
`RadixCache` and eviction policy over a KV pool of the same number of pages
(one scalar per token, so it costs no memory) and the engine's post-step
code (`Scheduler.commit`), with each request's next output token taken from
the trace. Policies are compared on long traces in seconds, and the engine's
own run of the same trace gives the same counters (tests check it).

`belady` is the offline reference: it evicts the cached prefix whose next
use by a request not yet admitted is furthest away (never again: first).
With whole-prefix reuse that is the classic optimum; on a radix tree of
variable-sized nodes, whose last victim gives only the tail pages needed, it
is the standard near-optimal floor, not an exact one (a policy can beat it by
a few percent).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from hive.runtime.engine.agent_stats import (
    AgentLedger,
    AgentStats,
    hotspot_agents,
    hotspot_miss_rate,
    prefix_hit_rate,
)
from hive.runtime.engine.eviction import BaseEvictionPolicy, make_eviction_policy
from hive.runtime.engine.kv_pool import KVPool
from hive.runtime.engine.prefix_history import page_hashes
from hive.runtime.engine.radix_cache import RadixCache, TreeNode
from hive.runtime.engine.replay_trace import TraceRequest
from hive.runtime.engine.request import Request, RequestStatus
from hive.runtime.engine.sampling_params import SamplingParams
from hive.runtime.engine.scheduler import Scheduler, generation_rows
from hive.runtime.engine.stats import EngineStats


@dataclass
class ReplayResult:
    policy: str
    agents: dict[str, AgentStats]
    hotspots: list[str]
    hotspot_miss_rate: float
    prefix_hit_rate: float
    recomputed_tokens: int
    steps: int
    preemptions: int
    evicted_pages: int
    failed: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


class BeladyPolicy(BaseEvictionPolicy):
    """Furthest next use first, from the whole trace (offline)."""

    name = "belady"

    def __init__(self, trace: Sequence[TraceRequest], page_size: int) -> None:
        self.page_size = page_size
        self.uses: dict[int, list[int]] = {}  # prefix hash -> trace indices, ascending
        for i, t in enumerate(trace):
            for h in page_hashes(t.prompt[:-1], page_size):
                self.uses.setdefault(h, []).append(i)
        self.requests: list[Request | None] = [None] * len(trace)  # None: not submitted yet
        self._cursor: dict[int, int] = {}  # uses[h][:cursor] have all finished

    def _is_future(self, index: int) -> bool:
        """Still to be admitted: not submitted, waiting, or preempted (waiting again)."""
        req = self.requests[index]
        return req is None or req.status is RequestStatus.WAITING

    def _is_done(self, index: int) -> bool:
        req = self.requests[index]
        return req is not None and req.status is RequestStatus.FINISHED

    def key(self, node: TreeNode) -> Any:
        parts, cur = [], node
        while cur is not None and cur.parent is not None:
            parts.append(cur.token_ids)
            cur = cur.parent
        hashes = page_hashes([t for part in reversed(parts) for t in part], self.page_size)
        # The node is worth keeping until the next request that shares its first page
        # (deeper pages are shared by a subset of those requests).
        first = len(hashes) - len(node.token_ids) // self.page_size
        if not hashes or first >= len(hashes):
            return -float("inf")
        h = hashes[first]
        uses = self.uses.get(h, [])
        p = self._cursor.get(h, 0)
        while p < len(uses) and self._is_done(uses[p]):  # finished stays finished
            p += 1
        self._cursor[h] = p
        for i in uses[p:]:
            if self._is_future(i):
                return -i  # a nearer next use keeps the node longer
        return -float("inf")


def replay(
    trace: Sequence[TraceRequest],
    *,
    kv_cache_tokens: int,
    policy: str = "lru",
    page_size: int = 1,
    max_batch_tokens: int = 2048,
    max_running_requests: int = 256,
    admission: str = "shares",
) -> ReplayResult:
    evictor: BaseEvictionPolicy
    evictor = BeladyPolicy(trace, page_size) if policy == "belady" else make_eviction_policy(policy)
    pool = KVPool(1, kv_cache_tokens // page_size, page_size, 1, 1, torch.float32, "cpu")
    cache = RadixCache(pool.allocator, page_size, evictor)
    stats = EngineStats()
    ledger = AgentLedger(page_size)
    scheduler = Scheduler(
        pool, cache, stats, max_batch_tokens, max_running_requests, ledger, admission
    )

    requests: dict[int, tuple[int, Request]] = {}  # rid -> (trace index, request)
    failed = 0

    live: dict[int, Request] = {}  # trace index -> its request, while it may be aborted

    def submit(i: int) -> None:
        t = trace[i]
        # A request the engine failed ran out of pool before it finished: give it room
        # for one more token so that the replay's scheduler fails it the same way.
        params = SamplingParams(max_tokens=len(t.output) + (1 if t.failed else 0) or 1,
                                ignore_eos=True)  # fmt: skip
        req = Request(
            list(t.prompt),
            params,
            0,
            agent_id=t.agent,
            priority=t.priority,
            prior=t.prior,
        )
        requests[req.rid] = (i, req)
        if t.aborted_at is not None:
            live[i] = req
        if isinstance(evictor, BeladyPolicy):
            evictor.requests[i] = req
        scheduler.add(req)

    def step() -> None:
        nonlocal failed
        for i, req in list(live.items()):  # callers that gave up before this step
            if (trace[i].aborted_at or 0) <= stats.num_steps:
                scheduler.abort(req)
                del live[i]
        if not scheduler.has_work():
            return
        schedule = scheduler.schedule()
        failed += len(schedule.failed)
        if schedule.items:  # as Engine.advance: a step without rows runs no forward pass
            scheduler.commit(schedule.items, generation_rows(schedule.items), take_token)
            stats.num_steps += 1

    def take_token(req: Request) -> bool:
        """The trace's next output token in place of the sampler's."""
        output = trace[requests[req.rid][0]].output
        k = len(req.output_ids)
        req.output_ids.append(output[k] if k < len(output) else 0)
        if len(req.output_ids) < req.params.max_tokens:
            return False
        req.finish_reason = "length"
        return True

    if any(t.arrival is not None for t in trace):
        # Recorded arrivals: each request is queued when the engine had run that many
        # steps (the engine counts no steps while idle, so an idle gap ends at once).
        order = sorted(range(len(trace)), key=lambda i: trace[i].arrival or 0)
        pos = 0
        while pos < len(order) or scheduler.has_work():
            while pos < len(order) and (
                (trace[order[pos]].arrival or 0) <= stats.num_steps or not scheduler.has_work()
            ):
                submit(order[pos])
                pos += 1
            step()
    else:
        for wave in sorted({t.wave for t in trace}):
            for i, t in enumerate(trace):
                if t.wave == wave:
                    submit(i)
            while scheduler.has_work():
                step()

    agents = dict(ledger.agents)
    hotspots = hotspot_agents(agents)
    return ReplayResult(
        policy=policy,
        agents=agents,
        hotspots=hotspots,
        hotspot_miss_rate=hotspot_miss_rate(agents, hotspots),
        prefix_hit_rate=prefix_hit_rate(agents),
        recomputed_tokens=sum(a.recomputed_tokens for a in agents.values()),
        steps=stats.num_steps,
        preemptions=stats.num_preemptions,
        evicted_pages=cache.num_evicted_pages,
        failed=failed,
    )
