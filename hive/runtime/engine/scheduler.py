"""Continuous batching over the paged pool and the radix cache.

Each step: (1) every running request that is decoding gets one token, (2)
running requests mid-prefill get their next chunk, (3) waiting requests are
admitted (prefix matched in the radix cache, the rest computed in chunks),
all within `max_batch_tokens` and `max_running_requests`, and last (4) the
Logits Cache drafts of decoding requests from what budget and free pages are
left (drafts.py). When the pool runs out, unreferenced cache leaves are
evicted first, then the youngest running requests are preempted: their
computed K/V goes into the radix cache (so re-admission may hit it) and they
wait to be recomputed.

A waiting request whose prompt shares a longer prefix with a request still
prefilling than with the cache waits one step, so the shared part is
computed once (N samples of one prompt, a common system prompt).

Admission `shares` (the default) gives each agent with work its share of batch
slots and prefill tokens by contribution before lending the rest
(agent_shares.py); `fcfs` admits in arrival order only.
"""

from __future__ import annotations

import bisect
import heapq
import math
from collections import Counter
from collections.abc import Callable
from typing import NamedTuple

from hive.runtime.engine.agent_shares import AgentShares, Entitlements, agent_key, is_starving
from hive.runtime.engine.agent_stats import AgentLedger
from hive.runtime.engine.config import check_admission
from hive.runtime.engine.errors import KVCacheTooSmallError
from hive.runtime.engine.kv_pool import KVPool
from hive.runtime.engine.kv_residency import KVResidency
from hive.runtime.engine.radix_cache import MatchResult, RadixCache, TreeNode
from hive.runtime.engine.request import Request, RequestStatus
from hive.runtime.engine.stats import EngineStats

MIN_SHARED_TOKENS = 8  # defer admission for a shared in-flight prefix at least this long


class ScheduledRequest(NamedTuple):
    request: Request
    start: int  # num_kv before this step
    extend_len: int
    is_sampled: bool
    draft: tuple[int, ...] = ()  # a decode that verifies these tokens too (drafts.py)


class Schedule(NamedTuple):
    # One-token rows first, then decodes with a draft, then longer extends.
    items: list[ScheduledRequest]
    # The one-token rows (decodes, and prompts one token from done); decodes with a draft
    # follow them (the engine runs each of their positions as a decode row too).
    num_decode: int
    failed: list[Request]  # requests that can never fit; finished with an error


def generation_rows(items: list[ScheduledRequest]) -> list[bool]:
    """Per row: a decode step of a request already generating, with or without a draft
    (the rest computes prompt tokens, or a preempted request's tokens again)."""
    return [
        (item.extend_len == 1 or bool(item.draft)) and bool(item.request.output_ids)
        for item in items
    ]


def common_prefix_len(a: list[int], b: list[int]) -> int:
    n = min(len(a), len(b))
    if a[:n] == b[:n]:
        return n
    i = 0
    while a[i] == b[i]:
        i += 1
    return i


class Scheduler:
    def __init__(
        self,
        pool: KVPool,
        cache: RadixCache,
        stats: EngineStats,
        max_batch_tokens: int,
        max_running_requests: int,
        ledger: AgentLedger | None = None,
        admission: str = "shares",
    ) -> None:
        self.pool = pool
        self.cache = cache
        self.stats = stats
        self.ledger = ledger if ledger is not None else AgentLedger(pool.page_size)
        cache.on_evict = self.ledger.record_eviction
        cache.policy.bind(self.ledger, cache)
        self.max_batch_tokens = max_batch_tokens
        self.max_running_requests = max_running_requests
        check_admission(admission)
        self.shares = (
            AgentShares(self.ledger, max_running_requests) if admission != "fcfs" else None
        )
        self.residency = (
            KVResidency(cache) if admission == "residency" and cache.policy.reserves_kv else None
        )
        self.waiting: list[Request] = []
        self.running: list[Request] = []

    def add(self, request: Request) -> None:
        request.arrival_step = request.waiting_since = self.stats.num_steps  # traces, starvation
        self.ledger.record_prior(request.agent_id, request.prior)
        self.waiting.append(request)

    def has_work(self) -> bool:
        return bool(self.waiting or self.running)

    # -- KV bookkeeping -------------------------------------------------------------------

    def _reserve_upto(
        self, req: Request, num_tokens: int, keep: Callable[[TreeNode], bool] | None = None
    ) -> int:
        """Reserve pages for up to `num_tokens` more tokens of `req`; return how many fit.
        Cached nodes for which `keep` is true are not evicted for them."""
        allocator, ps = self.pool.allocator, self.pool.page_size
        need = self.pool.pages_for(req.num_kv + num_tokens) - len(req.page_ids)
        if need > allocator.num_free:
            self.cache.evict(need - allocator.num_free, keep)
        need = min(need, allocator.num_free)
        fit = min(num_tokens, (len(req.page_ids) + need) * ps - req.num_kv)
        if fit <= 0:
            return 0
        req.pages.extend(
            allocator.allocate(self.pool.pages_for(req.num_kv + fit) - len(req.page_ids))
        )
        return fit

    def _add_drafts(self, decodes: list[ScheduledRequest], budget: int) -> None:
        """Once the step is otherwise scheduled: the drafts of `decodes` that fit in the
        budget left and in pages still free (a draft never evicts, preempts or delays
        anything), their items moved after the plain decode rows."""
        plain, drafted = [], []
        for item in decodes:
            req = item.request
            room = (len(req.page_ids) + self.pool.allocator.num_free) * self.pool.page_size
            draft = req.draft[: max(0, min(budget, room - req.num_kv - 1))]
            if not draft:
                plain.append(item)
                continue
            self._reserve_upto(req, 1 + len(draft))  # fits: free pages only
            drafted.append(item._replace(extend_len=1 + len(draft), draft=draft))
            budget -= len(draft)
        decodes[:] = plain + drafted

    def trim_pages(self, req: Request) -> None:
        """Give back the pages past `req`'s K/V (a rejected draft's), as a decode holds."""
        keep = self.pool.pages_for(req.num_kv)
        if len(req.page_ids) > keep:
            self.pool.allocator.free(req.page_ids[keep:])
            req.pages.truncate(keep)

    def cache_prefix(self, req: Request) -> None:
        """Hand the whole pages of `req`'s computed tokens to the radix cache, keep a lock."""
        ps = self.pool.page_size
        full = req.num_kv - req.num_kv % ps
        if full <= req.num_tree:
            return
        tokens = req.tokens[:full]
        self.ledger.history.insert(tokens)  # computed: later calls may reuse (or recompute) it
        existing = self.cache.insert(tokens, req.page_ids, req.agent_id, req.priority)
        self.pool.allocator.free(req.page_ids[req.num_tree // ps : existing // ps])
        match = self.cache.match_prefix(tokens, record=False)  # the node just inserted
        assert match.num_tokens == full
        self.cache.lock(match.node)
        if req.tree_node is not None:
            self.cache.unlock(req.tree_node)
        req.pages.replace_prefix(match.page_ids)
        req.num_tree, req.tree_node = full, match.node
        if req.num_recomputed_prompt and self.cache.policy.uses_recompute_marks:
            # Tokens computed again after an eviction: a reuse the cache missed. Mark the
            # part that had been computed before (not the call's own tail after it).
            reused = req.num_cached_prompt + req.num_recomputed_prompt
            if full >= reused:
                self.cache.mark_recomputed(tokens[:reused])
                req.num_recomputed_prompt = 0

    def commit(
        self,
        items: list[ScheduledRequest],
        generation: list[bool],
        take_token: Callable[[Request], bool],
    ) -> list[Request]:
        """After a step's forward pass: advance every row's KV, give each sampled row its
        token (`take_token` appends it and says whether the request is done), hand the
        prompt tokens just computed to the radix cache, and finish the done requests.
        The engine (tokens from the sampler) and the replay (tokens from a trace) share it.
        """
        for item in items:
            item.request.num_kv += item.extend_len
        finished = [item.request for item in items if item.is_sampled and take_token(item.request)]
        for item, is_generation in zip(items, generation, strict=True):
            # Prompt tokens just computed (or a preempted request's tokens recomputed)
            # go to the radix cache.
            if not is_generation and not item.request.finish_reason:
                self.cache_prefix(item.request)
        for req in finished:
            self.finish(req)
        return finished

    def release(self, req: Request) -> None:
        """Give `req`'s K/V to the cache (whole pages) or back to the pool; reset its KV state."""
        self.cache_prefix(req)
        ps = self.pool.page_size
        self.pool.allocator.free(req.page_ids[req.num_tree // ps :])
        if req.tree_node is not None:
            self.cache.unlock(req.tree_node)
        req.pages.reset()
        req.num_kv, req.num_tree, req.tree_node = 0, 0, None

    def preempt(self, req: Request) -> None:
        self.requeue(req)
        self.stats.num_preemptions += 1

    def requeue(self, req: Request) -> None:
        """Send a running request back to admission, its K/V to the cache (where
        admission finds it again, with whatever longer prefix the cache holds by then)."""
        self.running.remove(req)
        self.release(req)
        req.status = RequestStatus.WAITING
        req.waiting_since = self.stats.num_steps
        bisect.insort(self.waiting, req, key=lambda r: r.rid)

    def abort(self, req: Request) -> None:
        """Stop `req` wherever it is (its caller gave up); its pages go back as on finish."""
        if req.status is not RequestStatus.FINISHED:
            self.finish(req)
            req.finish_reason = req.finish_reason or "abort"

    def finish(self, req: Request) -> None:
        self.ledger.record_finish(req.agent_id, len(req.output_ids))
        if req in self.running:
            self.running.remove(req)
        elif req in self.waiting:
            self.waiting.remove(req)
        self.release(req)
        req.status = RequestStatus.FINISHED

    # -- scheduling -----------------------------------------------------------------------

    def schedule(self) -> Schedule:
        budget = self.max_batch_tokens
        items: list[ScheduledRequest] = []
        failed: list[Request] = []
        scheduled: set[int] = set()
        entitled = None
        reclaimed: set[int] = set()
        if self.shares is not None:
            entitled = self.shares.entitlements(self.running, self.waiting)
            if entitled is not None:
                reclaimed = self._reclaim_slots(entitled)
        preemptions_before = self.stats.num_preemptions

        for req in list(self.running):
            if (
                req.status is not RequestStatus.RUNNING
                or req.num_pending != 1
                or budget == 0
                or req.parked
            ):
                continue
            while not self._reserve_upto(req, 1):
                # The victim is the lowest-priority youngest request, `req` included:
                # a low-priority request never takes pages from a higher one.
                victim = self._pick_victim(scheduled)
                if victim is None or victim is req:
                    break
                if victim.priority < req.priority:
                    victim.age += 1  # gave way to higher-priority work: aging
                self.preempt(victim)
                if entitled is not None:
                    entitled.running[agent_key(victim)] -= 1
            else:
                items.append(ScheduledRequest(req, req.num_kv, 1, True))
                scheduled.add(req.rid)
                budget -= 1
                continue
            self._fail_or_preempt(req, failed)
            if entitled is not None and req.status is not RequestStatus.RUNNING:
                entitled.running[agent_key(req)] -= 1
        num_decode = len(items)

        # After a preemption the pool is short: admitting now would only take pages
        # that the next decode step preempts again (thrashing).
        admit = self.stats.num_preemptions == preemptions_before
        if entitled is not None:
            # First pass: each agent within its entitlement; then lend what is left.
            entitled.set_prefill_budget(budget)
            budget = self._extend_running(items, scheduled, budget, entitled)
            if admit:
                budget = self._admit(items, scheduled, budget, entitled, skip=reclaimed)
        budget = self._extend_running(items, scheduled, budget)
        if admit:
            budget = self._admit(items, scheduled, budget, skip=reclaimed)
        if any(item.request.draft for item in items[:num_decode]):
            # Last, so drafts take only what no decode, chunk or admission needed.
            decodes = items[:num_decode]
            self._add_drafts(decodes, budget)
            items[:num_decode] = decodes
            num_decode -= sum(1 for item in decodes if item.draft)

        if not items and self.running:
            victim = self._pick_victim(set())
            assert victim is not None
            self._fail_or_preempt(victim, failed)
        # A prompt whose cached prefix leaves one token (sample 2..N of a prompt) has
        # the shape of a decode row: run it with them (batched attention) rather than
        # as an extend of its own.
        one_token = [i for i in items[num_decode:] if i.extend_len == 1 and i.is_sampled]
        if one_token:
            rest = [i for i in items[num_decode:] if not (i.extend_len == 1 and i.is_sampled)]
            items[num_decode:] = one_token + rest  # (rest begins with the drafted)
            num_decode += len(one_token)
        return Schedule(items, num_decode, failed)

    def _reclaim_slots(self, entitled: Entitlements) -> set[int]:
        """With every slot taken, give one back (per agent and step) to each agent
        under its entitlement that has a request waiting: of the agent furthest over its
        own, the request that gives way first (`_gives_way_first`), unless it has a
        higher priority than the asker. Returns the requests preempted: they are not
        admitted again this step."""
        reclaimed: set[int] = set()
        if len(self.running) < self.max_running_requests:
            return reclaimed
        asked: set[str] = set()
        for req in list(self.waiting):  # preempting inserts into it
            agent = agent_key(req)
            if req.parked or agent in asked or not entitled.under_slots(agent):
                continue
            asked.add(agent)
            over = entitled.over_agent()
            if over is None:
                break
            victim = min((r for r in self.running if agent_key(r) == over), key=_gives_way_first)
            if victim.priority > req.priority:
                continue
            self.preempt(victim)
            self.stats.num_reclaimed_slots += 1
            entitled.running[over] -= 1
            reclaimed.add(victim.rid)
        return reclaimed

    def _extend_running(
        self,
        items: list[ScheduledRequest],
        scheduled: set[int],
        budget: int,
        entitled: Entitlements | None = None,
    ) -> int:
        """Give running requests still computing tokens their next chunk, or a longer
        one if this step already has a chunk of theirs; within each agent's token
        entitlement when `entitled` is given. Returns the budget left."""
        where = {item.request.rid: i for i, item in enumerate(items)}
        for req in self.running:
            if budget == 0:
                break
            index = where.get(req.rid)
            if req.parked or (index is None and req.num_pending <= 1):
                continue
            granted = items[index].extend_len if index is not None else 0
            want = min(req.num_pending - granted, budget)
            if entitled is not None:
                want = min(want, entitled.token_allowance(agent_key(req)))
            if want <= 0:
                continue
            # Later chunks evict as its admission did, while others run.
            keep = self._residency_keep(req, others_running=len(self.running) > 1)
            total = self._reserve_upto(req, granted + want, keep)
            if total <= granted:
                continue
            item = ScheduledRequest(req, req.num_kv, total, total == req.num_pending)
            if index is None:
                where[req.rid] = len(items)
                items.append(item)
                scheduled.add(req.rid)
            else:
                items[index] = item
            if entitled is not None:
                entitled.take(agent_key(req), total - granted)
            budget -= total - granted
        return budget

    def _admission_order(self, entitled: Entitlements) -> list[Request]:
        """The first pass's candidates: starving requests by arrival, then one request at
        a time from the agent least served against its entitlement (running / slots),
        in arrival order within an agent, while the agent is under its entitlement."""
        step = self.stats.num_steps
        running = Counter(entitled.running)
        order: list[Request] = []  # the starving ones first
        queues: dict[str, list[Request]] = {}
        for req in self.waiting:
            if req.parked:
                continue
            if is_starving(req, step):
                order.append(req)
                running[agent_key(req)] += 1
            else:
                queues.setdefault(agent_key(req), []).append(req)
        heap = [(running[a] / entitled.slots[a], i, a) for i, a in enumerate(queues)]
        heapq.heapify(heap)
        taken = dict.fromkeys(queues, 0)
        while heap and len(order) < self.max_running_requests:
            _, i, agent = heapq.heappop(heap)
            if running[agent] >= entitled.slots[agent]:
                continue
            order.append(queues[agent][taken[agent]])
            taken[agent] += 1
            running[agent] += 1
            if taken[agent] < len(queues[agent]):
                heapq.heappush(heap, (running[agent] / entitled.slots[agent], i, agent))
        return order

    def _admit(
        self,
        items: list[ScheduledRequest],
        scheduled: set[int],
        budget: int,
        entitled: Entitlements | None = None,
        skip: set[int] = frozenset(),  # type: ignore[assignment]
    ) -> int:
        """Admit waiting requests into the running batch; returns the budget left. With
        `entitled`, only the first pass's candidates, each within its agent's tokens."""
        ps = self.pool.page_size
        # Requests still computing their prompt: a waiting request that shares more
        # whole pages with one of them than the cache holds waits a step, so the
        # shared pages are computed once (N samples of a prompt, a common system prompt).
        inflight = [r for r in self.running if r.num_pending > 1]
        candidates = self._admission_order(entitled) if entitled is not None else list(self.waiting)
        # KV residency: the pages the running requests will still take (kv_residency.py).
        promised = (
            sum(self._pages_to_come(r, len(r.page_ids)) for r in self.running)
            if self.residency is not None
            else 0
        )
        step = self.stats.num_steps
        for req in candidates:
            if budget == 0 or len(self.running) >= self.max_running_requests:
                break
            if req.parked or req.rid in skip:
                continue  # parked: waits for a request computing its Logits Cache node
            cap = budget
            if entitled is not None and not is_starving(req, step):
                cap = min(cap, entitled.token_allowance(agent_key(req)))
                if cap <= 0:
                    continue
            tokens = req.tokens
            # Recorded as a hit only on admission: a deferred request matches every step.
            match = self.cache.match_prefix(tokens[:-1], record=False)
            if any(
                common_prefix_len(tokens, other.tokens) // ps * ps - match.num_tokens
                >= MIN_SHARED_TOKENS
                for other in inflight
            ):
                continue
            admit, keep = self._residency_gate(req, match, promised)
            if not admit:
                continue  # others may need fewer pages, or only their own agent's
            self.cache.lock(match.node)
            req.pages.reset(match.page_ids)
            req.num_kv = req.num_tree = match.num_tokens
            req.tree_node = match.node
            n = self._reserve_upto(req, min(req.num_pending, cap), keep)
            if n == 0:
                self.release(req)
                break
            # A use (and a hit) only once admitted: a failed attempt must not make a
            # prefix look reused to the eviction policies.
            self.cache.record_use(match.node, req.agent_id, req.priority)
            if not req.admitted:
                req.num_cached_prompt = match.num_tokens
                reusable = self.ledger.record_admission(
                    req.agent_id, tokens[:-1], match.num_tokens, new_prompt=req.sample_index == 0
                )
                req.num_recomputed_prompt = reusable - match.num_tokens
                req.admitted = True
            self.stats.num_prefix_hit_tokens += match.num_tokens
            self.waiting.remove(req)
            self.running.append(req)
            req.status = RequestStatus.RUNNING
            items.append(ScheduledRequest(req, req.num_kv, n, n == req.num_pending))
            scheduled.add(req.rid)
            inflight.append(req)
            budget -= n
            if self.residency is not None:
                promised += self._pages_to_come(req, len(req.page_ids))
            if entitled is not None:
                entitled.running[agent_key(req)] += 1
                entitled.take(agent_key(req), n)
        return budget

    def _pages_to_come(self, req: Request, held: int) -> int:
        """Pages `req` will still take beyond the `held` ones: the rest of its prompt, and
        the output its agent's calls produced on average."""
        stats = self.ledger.agents.get(agent_key(req))
        expected_output = math.ceil(stats.mean_output) if stats is not None else 0
        output = min(req.params.max_tokens - len(req.output_ids), expected_output)
        return max(0, self.pool.pages_for(len(req.tokens) + output) - held)

    def _residency_gate(
        self, req: Request, match: MatchResult, promised: int
    ) -> tuple[bool, Callable[[TreeNode], bool] | None]:
        """KV residency for admitting `req` (kv_residency.py), before its match is locked:
        whether it may go now, and the cached nodes its pages must not be evicted from
        (None: any, as when nothing else runs, it is starving, or free pages suffice)."""
        keep = self._residency_keep(req, others_running=bool(self.running))
        if keep is None:
            return True, None
        assert self.residency is not None
        short = self._pages_to_come(req, len(match.page_ids)) - (
            self.pool.allocator.num_free - promised
        )
        if short <= 0:
            return True, None
        if self.residency.evictable_pages(req.agent_id, match.node) < short:
            return False, None
        return True, keep

    def _residency_keep(
        self, req: Request, others_running: bool
    ) -> Callable[[TreeNode], bool] | None:
        """The cached nodes `req`'s pages must not be evicted from (kv_residency.py);
        None when the rule does not apply: no reserving policy, nothing else running, or
        `req` waiting (then, for its later chunks, in the batch) `STARVE_STEPS` on end."""
        if self.residency is None or not others_running or is_starving(req, self.stats.num_steps):
            return None
        return self.residency.reserved_against(req.agent_id)

    def _pick_victim(self, exclude: set[int]) -> Request | None:
        """The running request to preempt: lowest effective priority, then youngest.

        Effective priority is the request's priority plus its age: the times it gave
        way to a higher-priority request (aging). Once it has given way more times than
        the priority gap, newer higher-priority requests are chosen before it, so a
        stream of higher-priority work cannot starve it forever. Among equal priorities
        nothing ages: the youngest gives way, so the oldest always progresses.
        """
        candidates = [r for r in self.running if r.rid not in exclude]
        if not candidates:
            return None
        return min(candidates, key=_gives_way_first)

    def _fail_or_preempt(self, req: Request, failed: list[Request]) -> None:
        if len(self.running) == 1:
            req.error = KVCacheTooSmallError(
                f"KV pool of {self.pool.capacity_tokens} tokens cannot hold this request "
                f"({req.num_tokens} tokens); raise kv_cache_tokens"
            )
            failed.append(req)
            self.finish(req)
            req.finish_reason = "error"
        else:
            self.preempt(req)

    def check_invariants(self) -> None:
        """Every page is free, owned by exactly one request, or in the cache (tests)."""
        owned: list[int] = list(self.cache.all_page_ids())
        for req in self.running:
            owned.extend(req.page_ids[req.num_tree // self.pool.page_size :])
            assert len(req.page_ids) >= self.pool.pages_for(req.num_kv)
            assert req.pages.tensor().tolist() == req.page_ids, "stale page tensor"
        free = self.pool.allocator.free_page_ids()
        assert len(owned) == len(set(owned)), "a page is owned twice"
        assert not free & set(owned), "a page is both free and owned"
        assert len(free) + len(owned) == self.pool.num_pages, "a page is unaccounted for"
        for node in self.cache.nodes():
            assert node.ref_count >= 0
        for req in self.waiting:
            assert not req.page_ids and req.tree_node is None


def _gives_way_first(req: Request) -> tuple[int, int]:
    """Preemption order: lowest effective priority (priority + age), then youngest."""
    return (req.priority + req.age, -req.rid)
