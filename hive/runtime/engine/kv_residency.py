"""KV residency: an admission does not evict a more valuable agent's prefix.

Eviction alone cannot keep a hot agent's prefix when the running requests'
own pages fill the pool: in six concurrent copies of a pipeline, four critics
admitted together take the pages of the verifier's system prompt that every
copy calls next, and no eviction order can help (Belady's included). So with
agent-aware admission, a waiting request of agent a is admitted only if the
pages it needs beyond the free ones can come from cached nodes whose
residency (`BaseEvictionPolicy.residency`; for `workflow`, the top
contribution among the node's expected agents) is at most the policy's
`claim(a)` (for `workflow`, a's contribution). Else the request waits, and
the others go on. The rule never blocks progress: it applies only
while other requests run (they finish and free their pages), and a request
starving (`is_starving`) ignores it. Agent-unaware policies reserve nothing.

The cache's evictable nodes are summarised once (sorted by residency, with
the pages at or below each level) and the summary is reused until an
admission changes the tree, so checking many waiting requests costs one scan
and a bisection each (and a walk up each one's own matched prefix). The
pages it counts are those that may go, not those eviction will pick: the
policy's order still decides which nodes are evicted.
"""

from __future__ import annotations

import bisect
import itertools

from hive.runtime.engine.radix_cache import RadixCache, TreeNode


class KVResidency:
    def __init__(self, cache: RadixCache) -> None:
        self.cache = cache
        self._levels: list[float] | None = None  # residency of evictable nodes, ascending
        self._pages: list[int] = []  # pages of the nodes up to and including each level
        self._summarised: dict[int, float] = {}  # id(node) -> its level, for those nodes

    def invalidate(self) -> None:
        """The tree changed (an admission locked or evicted nodes)."""
        self._levels = None

    def _summarise(self) -> None:
        policy = self.cache.policy
        evictable = [n for n in self.cache.nodes() if n.ref_count == 0]
        self._summarised = {id(n): policy.residency(n) for n in evictable}
        nodes = sorted((self._summarised[id(n)], len(n.page_ids)) for n in evictable)
        self._levels = [level for level, _ in nodes]
        self._pages = list(itertools.accumulate(pages for _, pages in nodes))

    def evictable_pages(self, agent_id: str | None, own: TreeNode) -> int:
        """Cached pages that an admission of `agent_id` may evict; `own` is the node its
        request has just matched and locked (its path is not evictable now, though a
        summary made before the lock counted it)."""
        if self._levels is None:
            self._summarise()
        assert self._levels is not None
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
