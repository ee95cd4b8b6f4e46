"""KV residency: an admission does not evict a more valuable agent's prefix.

Eviction alone cannot keep a hot agent's prefix when the running requests'
own pages fill the pool: in six concurrent copies of a pipeline, four critics
admitted together take the pages of the verifier's system prompt that every
copy calls next, and no eviction order can help (Belady's included). So with
`residency` admission (shares plus this rule; not the default), while other
requests run, a waiting request of agent
a is admitted only if the pages it needs can come from free pages not
already promised and from cached nodes whose residency
(`BaseEvictionPolicy.residency`; for `workflow`, the top contribution among
the node's expected agents) is at most the policy's `claim(a)` (for
`workflow`, a's contribution); and the pages of its admission, and of its
prompt's later chunks while others run, are then evicted among those nodes
only, whatever the policy's order. Else it waits and the others go on. (A
decode step's page is taken as always: it cannot wait.)

What it needs: its whole prompt (a chunked prompt's later chunks need pages
too) and the output its agent's calls produced on average (a request
admitted into the last free pages would evict the reserved prefix with its
first decoded tokens). What is promised: the same, for the requests already
running, beyond the pages they hold.

Progress: a request that has waited `STARVE_STEPS` on end ignores the rule
(agent_shares.py), its later chunks too (counted from when it started
waiting), and so does any request while nothing else runs. The rule
ranks agents by contribution, not by request priority (the executor's
priorities come from the same plan estimate).

The evictable nodes are summarised (sorted by residency, with the pages at
or below each level) and the summary is reused until the tree, its locks or
its uses change (`RadixCache.version`): checking many waiting requests
between two admissions costs one scan, and a bisection and a walk up the
request's own matched prefix each. It counts every unlocked node at or below
the claim, including an inner node above a reserved leaf, which eviction
cannot reach: then the admission gets fewer pages than counted, and a
shorter first chunk.

Why it is not the default: it trades decode steps for prefill. Since eviction
takes only the pages it needs (radix_cache.py), the pool stays full, every
waiting request must find its pages among unreserved nodes, and on the copies
workload of `hive bench agents` the waits took 255 steps instead of 98 to save
175 of 4,755 recomputed tokens: slower end to end on a CPU, where a step's
fixed cost is reading the weights (see BENCHMARKS.md).
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Callable

from hive.runtime.engine.radix_cache import RadixCache, TreeNode


class KVResidency:
    def __init__(self, cache: RadixCache) -> None:
        self.cache = cache
        self._version = -1  # the cache's version the summary was made at
        self._levels: list[float] = []  # residency of evictable nodes, ascending
        self._pages: list[int] = []  # pages of the nodes up to and including each level
        self._summarised: dict[int, float] = {}  # id(node) -> its level, for those nodes

    def _summarise(self) -> None:
        policy = self.cache.policy
        evictable = [n for n in self.cache.nodes() if n.ref_count == 0]
        self._summarised = {id(n): policy.residency(n) for n in evictable}
        nodes = sorted((self._summarised[id(n)], len(n.page_ids)) for n in evictable)
        self._levels = [level for level, _ in nodes]
        self._pages = list(itertools.accumulate(pages for _, pages in nodes))
        self._version = self.cache.version

    def evictable_pages(self, agent_id: str | None, own: TreeNode) -> int:
        """Cached pages an admission of `agent_id` may evict; `own` is the node its request
        matched (not locked yet): that path is the request's own, not pages it can free."""
        if self._version != self.cache.version:
            self._summarise()
        mine = self.cache.policy.claim(agent_id)
        count = bisect.bisect_right(self._levels, mine)
        pages = self._pages[count - 1] if count else 0
        node: TreeNode | None = own
        while node is not None and node is not self.cache.root:
            level = self._summarised.get(id(node))
            if level is not None and level <= mine:
                pages -= len(node.page_ids)
            node = node.parent
        return pages

    def reserved_against(self, agent_id: str | None) -> Callable[[TreeNode], bool]:
        """The nodes an admission of `agent_id` must not evict (`RadixCache.evict`'s keep)."""
        policy, mine = self.cache.policy, self.cache.policy.claim(agent_id)
        return lambda node: policy.residency(node) > mine
