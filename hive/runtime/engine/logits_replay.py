"""Between steps: walk the Logits Cache's requests through their tries.

A request with `params.logits_cache` stands on the trie node of its next
position. While that node holds a distribution, the request draws its
uniform from its own generator, replays the sampler's choice, and moves to
the child: no forward pass. Otherwise the model must run at that position:
one request claims the node, and any other request standing on the same
node (an identical path of the same key) parks until the claimer's step
has stored the distribution, then replays it. That is how N samples of one
prompt compute its first-token distribution once, and how identical running
paths share one forward row.

A replayed token has no K/V yet. A request that leaves the trie with several
such tokens takes whatever prefix the radix cache holds, after any running
sibling of its key that computed those tokens has handed its pages to the
cache, and the rest is prefilled in chunks like a preempted request.

Off the trie, a decoding request still borrows from the key's finished paths:
`propose_drafts` gives it a draft, which the step verifies (drafts.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from hive.runtime.engine.drafts import propose
from hive.runtime.engine.hotspot import branch_point
from hive.runtime.engine.logits_cache import LogitsCache, TrieNode, distribution_key
from hive.runtime.engine.request import Request, RequestStatus
from hive.runtime.engine.sampler import draw_uniform
from hive.runtime.engine.scheduler import Scheduler, common_prefix_len
from hive.runtime.engine.stored_distribution import StoredDistribution


def cache_key(req: Request) -> tuple:
    return (tuple(req.prompt_ids), distribution_key(req.params))


class LogitsReplay:
    def __init__(
        self,
        cache: LogitsCache,
        scheduler: Scheduler,
        check_finished: Callable[[Request], bool],
    ) -> None:
        self.cache = cache
        self.scheduler = scheduler
        self.check_finished = check_finished

    def uses_cache(self, req: Request) -> bool:
        return req.params.logits_cache is not None and self.cache.enabled

    def walk(self, requests: Iterable[Request]) -> list[Request]:
        """Replay every cached request as far as the trie goes; return those it finished."""
        finished = []
        # Requests with the least to compute first, so the one that claims a node is the
        # one ready to run it (a decode row), and those still missing K/V park on it.
        order = sorted(
            (r for r in requests if self.uses_cache(r) and r.status is not RequestStatus.FINISHED),
            key=lambda r: (r.status is not RequestStatus.RUNNING, r.num_pending, r.rid),
        )
        for req in order:
            req.parked = False
            if req.pending_uniform is not None:
                continue  # drew past a stored head: the model computes this position
            if self._replay(req):
                finished.append(req)
            elif not req.parked and req.num_pending > 1:
                self._reuse_kv(req)
        for req in finished:
            self.scheduler.finish(req)
        return finished

    def _reuse_kv(self, req: Request) -> None:
        """`req` replayed tokens it has no K/V for: a running sibling (same key) that
        computed them hands its pages to the radix cache, and `req`, if running, goes
        back to admission to take them (a waiting request takes them when admitted)."""
        key = req.lc_node.entry_key if req.lc_node is not None else None
        tokens = req.tokens
        radix = self.scheduler.cache
        for other in self.scheduler.running:
            node = other.lc_node
            if (
                other is not req
                and node is not None
                and node.entry_key == key
                and other.num_kv - other.num_tree >= radix.page_size
                and common_prefix_len(tokens, other.tokens[: other.num_kv]) > req.num_kv
            ):
                self.scheduler.cache_prefix(other)
        if (
            req.status is RequestStatus.RUNNING
            and radix.match_prefix(tokens[:-1], record=False).num_tokens > req.num_kv
        ):
            self.scheduler.requeue(req)

    def _replay(self, req: Request) -> bool:
        starting = req.lc_node is None and not req.output_ids
        if starting and req.params.logits_cache == "hotspot" and self._branch(req):
            return True
        node = self._node(req)
        while node.dist is not None:
            dist = node.dist
            self.cache.touch(node)
            u = draw_uniform(req.generator)
            i = dist.lookup(u)
            if i is None:
                req.pending_uniform = u
                self.cache.stats.tail_misses += 1
                return False
            token = dist.ids[i]
            req.lc_node = self.cache.child(node, token) if node.alive else None
            if self._push(req, token, dist.logprobs[i]):
                return True
            node = self._node(req)
        claimer = node.claim
        if (
            claimer is not None
            and claimer is not req
            and claimer.status is RequestStatus.RUNNING
            and claimer.lc_node is node
            and claimer.pending_uniform is None
        ):
            req.parked = True  # the claimer's step computes this node; replay it after
        else:
            node.claim = req
        return False

    def _push(self, req: Request, token: int, logprob: float) -> bool:
        """Append a token the model did not compute now; True if that finished `req`."""
        req.output_ids.append(token)
        if req.logprobs is not None:
            req.logprobs.append(logprob)
        self.cache.stats.hits += 1
        self.scheduler.ledger.record_replayed(req.agent_id)
        return self.check_finished(req)

    def _node(self, req: Request) -> TrieNode:
        node = req.lc_node
        if node is not None and node.alive:
            return node
        node = req.lc_node = self.cache.find(cache_key(req), req.output_ids)
        return node

    def _branch(self, req: Request) -> bool:
        """Hotspot mode: start from an earlier path's prefix, a new token and the earlier
        path's confident tokens after it (hotspot.py); True if that already finished the
        request (the earlier path may have run under other stops or a larger
        max_tokens, so every token is checked)."""
        choice = branch_point(self.cache, cache_key(req), req.generator)
        if choice is None:
            return False
        self.cache.stats.branched += 1
        for t, logprob in zip(choice.tokens, choice.logprobs, strict=True):
            if self._push(req, t, logprob):
                return True
        return False

    def propose_drafts(self, requests: Iterable[Request], max_len: int, max_context: int) -> None:
        """Give each decoding request of the cache its draft for this step (drafts.py):
        up to `max_len` tokens, within its max_tokens and the context (the step may add
        the draft and one more token). None for a request with penalties (its rows'
        contexts would differ) or one waiting for another's row."""
        for req in requests:
            req.draft = ()
            node = req.lc_node  # where it stands in its key's trie
            if (
                max_len <= 0
                or not self.uses_cache(req)
                or node is None
                or not node.alive
                or req.status is not RequestStatus.RUNNING
                or req.num_pending != 1
                or req.parked
                or req.pending_uniform is not None
                or not req.output_ids
                or req.params.has_penalties
            ):
                continue
            room = min(
                max_len,
                req.params.max_tokens - len(req.output_ids) - 1,
                max_context - req.num_tokens - 1,
            )
            continuations = self.cache.continuations.get(node.entry_key)
            req.draft = propose(continuations, req.output_ids, room)

    # -- the forward pass's side ----------------------------------------------------------

    def capture(self, sampled: list[Request]) -> list[bool] | None:
        """Which sampled rows should hand their distribution to the cache."""
        flags = [
            self.uses_cache(r) and r.lc_node is not None and r.lc_node.dist is None for r in sampled
        ]
        return flags if any(flags) else None

    def sampled(self, req: Request, dist: StoredDistribution | None) -> None:
        """`req`'s position was computed by the model and its token appended."""
        if not self.uses_cache(req):
            return
        node = req.lc_node
        self.cache.stats.misses += 1
        if node is None or not node.alive:
            req.lc_node = None  # found again from the root at the next walk
            return
        if dist is not None:
            self.cache.store(node, dist)
        if node.claim is req:
            node.claim = None
        req.lc_node = self.cache.child(node, req.output_ids[-1]) if node.alive else None

    def finished(self, req: Request) -> None:
        if not self.uses_cache(req):
            return
        node = req.lc_node
        if node is not None and node.claim is req:
            node.claim = None
        req.lc_node = None
        if req.finish_reason in ("stop", "length"):
            self.cache.complete_path(cache_key(req), list(req.output_ids))
