"""Radix tree over token ids mapping cached prefixes to KV pages.

Keys are whole pages: a node's `token_ids` length is a multiple of
`page_size` and matches are rounded down to whole pages, so a cached page is
never partially written by two requests (no copy-on-write needed).

Contract:
- `match_prefix(ids)` returns the longest cached page-aligned prefix; the
  caller `lock`s the node while it reads those pages and `unlock`s it after.
- `insert(ids, pages)` adds a prefix whose K/V sits in `pages` and returns
  how many leading tokens were already cached: the caller owns (and must
  free or keep) its pages for that part; the tree owns the rest.
- `evict(num_pages)` frees unreferenced leaves (ref_count 0) in the order of
  the eviction policy, returning pages to the allocator; the last leaf gives
  only the pages still needed, from its tail.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable
from typing import NamedTuple

from hive.runtime.engine.eviction import BaseEvictionPolicy, LRUPolicy
from hive.runtime.engine.kv_pool import PageAllocator


class TreeNode:
    __slots__ = (
        "children",
        "parent",
        "token_ids",
        "page_ids",
        "ref_count",
        "last_access",
        "hit_count",
        "recomputed",
        "agent_ids",
        "priority",
        "serial",
    )

    def __init__(
        self, parent: TreeNode | None, token_ids: list[int], page_ids: list[int], serial: int
    ):
        self.children: dict[tuple[int, ...], TreeNode] = {}
        self.parent = parent
        self.token_ids = token_ids
        self.page_ids = page_ids
        self.ref_count = 0
        self.last_access = 0
        self.hit_count = 0
        self.recomputed = False  # computed again after an eviction: a reuse the cache missed
        self.agent_ids: set[str] = set()
        self.priority = 0
        self.serial = serial  # creation order: breaks eviction ties the same way every run

    def __lt__(self, other: TreeNode) -> bool:  # heap ties
        return self.serial < other.serial


class MatchResult(NamedTuple):
    num_tokens: int
    page_ids: list[int]
    node: TreeNode


class RadixCache:
    def __init__(
        self,
        allocator: PageAllocator,
        page_size: int,
        policy: BaseEvictionPolicy | None = None,
    ) -> None:
        self.allocator = allocator
        self.page_size = page_size
        self.policy = policy or LRUPolicy()
        self._serials = itertools.count()
        self.root = TreeNode(None, [], [], next(self._serials))
        self.root.ref_count = 1  # never evicted
        self.num_pages = 0
        self.num_evicted_pages = 0
        self._clock = itertools.count(1)
        self.now = 0  # the last use's clock value (one tick per record_use)
        # Bumped by every change of the tree, its locks or its uses: lets a summary of
        # the evictable nodes (kv_residency.py) know when it is stale.
        self.version = 0
        # Told (agents of the node, pages) for every evicted node: per-agent accounting.
        self.on_evict: Callable[[set[str], int], None] | None = None

    def _key(self, token_ids: list[int], start: int) -> tuple[int, ...]:
        return tuple(token_ids[start : start + self.page_size])

    def _common_len(self, node_ids: list[int], ids: list[int], start: int) -> int:
        n = min(len(node_ids), len(ids) - start)
        if ids[start : start + n] == node_ids[:n]:
            common = n
        else:
            common = 0
            while common < n and node_ids[common] == ids[start + common]:
                common += 1
        return common - common % self.page_size

    def _split(self, node: TreeNode, num_tokens: int) -> TreeNode:
        """Cut `node` after `num_tokens` tokens; return the new upper part."""
        self.version += 1
        num_pages = num_tokens // self.page_size
        upper = TreeNode(
            node.parent, node.token_ids[:num_tokens], node.page_ids[:num_pages], next(self._serials)
        )
        upper.ref_count = node.ref_count
        upper.last_access = node.last_access
        upper.hit_count = node.hit_count
        upper.recomputed = node.recomputed
        upper.agent_ids = set(node.agent_ids)
        upper.priority = node.priority
        assert node.parent is not None
        node.parent.children[self._key(node.token_ids, 0)] = upper
        node.token_ids = node.token_ids[num_tokens:]
        node.page_ids = node.page_ids[num_pages:]
        node.parent = upper
        upper.children[self._key(node.token_ids, 0)] = node
        return upper

    def record_use(
        self, node: TreeNode, agent_id: str | None = None, priority: int = 0, *, hit: bool = True
    ) -> None:
        """Mark `node` and its ancestors as just used by `agent_id` (a prefix hit when
        `hit`; an insert of newly computed pages is a use but not a hit)."""
        now = self.now = next(self._clock)
        self.version += 1
        while node is not self.root:
            node.last_access = now
            node.hit_count += hit
            if agent_id is not None:
                node.agent_ids.add(agent_id)
            node.priority = max(node.priority, priority)
            node = node.parent  # type: ignore[assignment]

    def mark_recomputed(self, token_ids: list[int]) -> None:
        """The cached prefix `token_ids` (whole pages) had been computed before and was
        evicted: mark its nodes (split at its end, so not the tail after it)."""
        node = self.match_prefix(token_ids, record=False).node
        while node is not self.root:
            node.recomputed = True
            node = node.parent  # type: ignore[assignment]

    def match_prefix(
        self,
        token_ids: list[int],
        agent_id: str | None = None,
        priority: int = 0,
        *,
        record: bool = True,
    ) -> MatchResult:
        """The longest cached page-aligned prefix; with `record`, counts as a use (a hit)."""
        node, pos, pages = self.root, 0, []
        while len(token_ids) - pos >= self.page_size:
            child = node.children.get(self._key(token_ids, pos))
            if child is None:
                break
            common = self._common_len(child.token_ids, token_ids, pos)
            if common == 0:
                break
            if common < len(child.token_ids):
                child = self._split(child, common)
            pages.extend(child.page_ids)
            pos += common
            node = child
        if record:
            self.record_use(node, agent_id, priority)
        return MatchResult(pos, pages, node)

    def insert(
        self,
        token_ids: list[int],
        page_ids: list[int],
        agent_id: str | None = None,
        priority: int = 0,
    ) -> int:
        """Insert the whole pages of `token_ids`; return tokens already cached."""
        num_tokens = len(token_ids) - len(token_ids) % self.page_size
        assert len(page_ids) >= num_tokens // self.page_size
        node, pos = self.root, 0
        while pos < num_tokens:
            child = node.children.get(self._key(token_ids, pos))
            if child is None:
                leaf = TreeNode(
                    node,
                    token_ids[pos:num_tokens],
                    page_ids[pos // self.page_size : num_tokens // self.page_size],
                    next(self._serials),
                )
                node.children[self._key(token_ids, pos)] = leaf
                self.num_pages += len(leaf.page_ids)
                self.record_use(leaf, agent_id, priority, hit=False)
                return pos
            common = self._common_len(child.token_ids, token_ids[:num_tokens], pos)
            if common < len(child.token_ids):
                child = self._split(child, common)
            pos += common
            node = child
        self.record_use(node, agent_id, priority, hit=False)
        return pos

    def lock(self, node: TreeNode) -> None:
        self.version += 1
        while node is not self.root:
            node.ref_count += 1
            node = node.parent  # type: ignore[assignment]

    def unlock(self, node: TreeNode) -> None:
        self.version += 1
        while node is not self.root:
            node.ref_count -= 1
            assert node.ref_count >= 0, "radix node unlocked more than locked"
            node = node.parent  # type: ignore[assignment]

    def evict(self, num_pages: int, keep: Callable[[TreeNode], bool] | None = None) -> int:
        """Free `num_pages` pages if possible; return pages freed. Leaves go in the
        policy's order; the last one gives only the pages still needed, from its tail
        (the rest stays cached). Nodes for which `keep` is true stay (and so do their
        ancestors)."""
        if num_pages <= 0:
            return 0
        self.version += 1
        heap = [
            (self.policy.key(n), n)
            for n in self.nodes()
            if not n.children and n.ref_count == 0 and not (keep and keep(n))
        ]
        heapq.heapify(heap)
        freed = 0
        while heap and freed < num_pages:
            _, node = heapq.heappop(heap)
            surplus = len(node.page_ids) - (num_pages - freed)
            if surplus > 0:
                # Free only the tail pages still needed: the node's head stays a cached
                # prefix (a prefix is useful from its start, so the tail goes first).
                self._split(node, surplus * self.page_size)
            self.allocator.free(node.page_ids)
            freed += len(node.page_ids)
            if self.on_evict is not None:
                self.on_evict(node.agent_ids, len(node.page_ids))
            parent = node.parent
            assert parent is not None
            del parent.children[self._key(node.token_ids, 0)]
            if (
                parent is not self.root
                and not parent.children
                and parent.ref_count == 0
                and not (keep and keep(parent))
            ):
                heapq.heappush(heap, (self.policy.key(parent), parent))
        self.num_pages -= freed
        self.num_evicted_pages += freed
        return freed

    def nodes(self) -> list[TreeNode]:
        out, stack = [], list(self.root.children.values())
        while stack:
            node = stack.pop()
            out.append(node)
            stack.extend(node.children.values())
        return out

    def all_page_ids(self) -> list[int]:
        return [p for n in self.nodes() for p in n.page_ids]
