"""The Logits Cache: next-token distributions of paths already sampled, per context.

Key: the prompt's token ids and every sampling parameter that changes the
distribution (`distribution_key`); one cache belongs to one engine, so to one
model. The key is the full tuple, compared by equality: two contexts that
differ in one token or one parameter can never share an entry, whatever
their hashes.

Value: a trie over generated token ids. The node at depth d holds the
distribution after prompt + tokens[:d] (a StoredDistribution), and its
children are the tokens paths took from there.

Memory is bounded by a byte budget (distributions and nodes). Eviction drops
the least recently used distribution, wherever it sits in a trie, and then
every node left holding nothing (no distribution, no children), up the
path. A node a running request stands on may go: the request notices
(`alive` is False) and finds its place again from the root. Only the nodes
of paths in flight can keep the total above the budget, by a few nodes.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import asdict, dataclass

from hive.runtime.engine.drafts import Continuations, index_path, path_confidences
from hive.runtime.engine.sampling_params import SamplingParams
from hive.runtime.engine.stored_distribution import OVERHEAD_BYTES, StoredDistribution

NODE_BYTES = 120  # a trie node: object, children dict entry, LRU entry
# Below this a budget cannot hold one node with a one-token distribution: nothing is cached.
MIN_BUDGET_BYTES = NODE_BYTES + OVERHEAD_BYTES + 24


def distribution_key(params: SamplingParams) -> tuple:
    """The sampling parameters that change a next-token distribution (greedy is one)."""
    penalties = (params.repetition_penalty, params.frequency_penalty, params.presence_penalty)
    if params.is_greedy:
        return ("greedy", *penalties)
    return (params.temperature, params.top_k, params.top_p, params.min_p, *penalties)


class TrieNode:
    __slots__ = ("parent", "token", "children", "dist", "alive", "claim", "entry_key")

    def __init__(self, parent: TrieNode | None, token: int, entry_key: tuple) -> None:
        self.parent = parent
        self.token = token
        self.children: dict[int, TrieNode] = {}
        self.dist: StoredDistribution | None = None
        self.alive = True
        self.claim: object = None  # the request computing this node's distribution now
        self.entry_key = entry_key

    def path(self) -> list[int]:
        tokens = []
        node: TrieNode | None = self
        while node is not None and node.parent is not None:
            tokens.append(node.token)
            node = node.parent
        return tokens[::-1]


@dataclass
class LogitsCacheStats:
    hits: int = 0  # positions whose token came from a stored distribution
    misses: int = 0  # positions of cached requests the model computed
    tail_misses: int = 0  # of those: a draw outside a stored head (the row was kept partly)
    inserted: int = 0  # distributions stored
    rejected: int = 0  # distributions larger than the whole budget (not stored)
    branched: int = 0  # hotspot re-samples started from an earlier path
    evicted: int = 0  # distributions evicted for the budget
    bytes_held: int = 0
    nodes: int = 0
    entries: int = 0


class LogitsCache:
    def __init__(self, budget_bytes: int, index_drafts: bool = True) -> None:
        self.budget_bytes = budget_bytes
        self.index_drafts = index_drafts  # keep the finished paths' drafts (drafts.py)
        self.entries: dict[tuple, TrieNode] = {}  # key -> root
        self.completed: dict[tuple, list[list[int]]] = {}  # key -> finished paths, oldest first
        self.continuations: dict[tuple, Continuations] = {}  # key -> drafts (drafts.py)
        self._confidences: dict[tuple, list[list[float]]] = {}  # of the completed paths
        # Nodes holding a distribution, least recently used first (id(node) -> node).
        self._lru: OrderedDict[int, TrieNode] = OrderedDict()
        self.stats = LogitsCacheStats()

    @property
    def enabled(self) -> bool:
        """False for a budget of 0, or one too small to hold any distribution."""
        return self.budget_bytes >= MIN_BUDGET_BYTES

    def root(self, key: tuple) -> TrieNode:
        root = self.entries.get(key)
        if root is None:
            root = self.entries[key] = TrieNode(None, -1, key)
            self._added(root)
        return root

    def child(self, node: TrieNode, token: int) -> TrieNode:
        """The node after `token` from `node` (created empty if new)."""
        child = node.children.get(token)
        if child is None:
            child = node.children[token] = TrieNode(node, token, node.entry_key)
            self._added(child)
        else:
            self.touch(child)
        return child

    def find(self, key: tuple, tokens: list[int]) -> TrieNode:
        """The node for `tokens` under `key` (a request finding its place again)."""
        node = self.root(key)
        for token in tokens:
            node = self.child(node, token)
        return node

    def touch(self, node: TrieNode) -> None:
        if id(node) in self._lru:
            self._lru.move_to_end(id(node))

    def store(self, node: TrieNode, dist: StoredDistribution) -> bool:
        """Keep `dist` at `node` within the budget; False if it cannot fit at all."""
        if not node.alive or node.dist is not None:
            return node.dist is not None
        if dist.nbytes + NODE_BYTES > self.budget_bytes:
            self.stats.rejected += 1
            return False
        node.dist = dist
        self._lru[id(node)] = node
        self.stats.bytes_held += dist.nbytes
        self.stats.inserted += 1
        self._fit(protect=node)
        return node.alive

    def complete_path(self, key: tuple, tokens: list[int], keep: int = 64) -> None:
        """Record a finished path of `key` (hotspot mode re-samples from these, drafts
        come from them)."""
        if key not in self.entries:
            return
        paths = self.completed.setdefault(key, [])
        paths.append(tokens)
        if not self.index_drafts:
            del paths[:-keep]
            return
        confidences = self._confidences.setdefault(key, [])
        confidences.append(path_confidences(self.entries[key], tokens))
        continuations = self.continuations.setdefault(key, {})
        if len(paths) > keep:
            del paths[:-keep], confidences[:-keep]
            continuations.clear()  # re-indexed from the kept paths only
            for path, confidence in zip(paths, confidences, strict=True):
                index_path(continuations, path, confidence)
        else:
            index_path(continuations, tokens, confidences[-1])

    # -- memory ---------------------------------------------------------------------------

    def _added(self, node: TrieNode) -> None:
        self.stats.nodes += 1
        self.stats.bytes_held += NODE_BYTES
        self._fit(protect=node)

    def _fit(self, protect: TrieNode) -> None:
        """Drop least recently used distributions until the budget holds (never `protect`'s;
        the nodes of paths in flight may keep the total a few nodes above it)."""
        while self.stats.bytes_held > self.budget_bytes and self._lru:
            node = next(iter(self._lru.values()))
            if node is protect:
                if len(self._lru) == 1:
                    return
                self._lru.move_to_end(id(node))
                continue
            self._drop(node)

    def _drop(self, node: TrieNode) -> None:
        """Evict `node`'s distribution, then the nodes left holding nothing."""
        del self._lru[id(node)]
        assert node.dist is not None
        self.stats.bytes_held -= node.dist.nbytes
        self.stats.evicted += 1
        node.dist = None
        current: TrieNode | None = node
        while current is not None and current.alive and not current.children and not current.dist:
            current.alive = False
            self.stats.nodes -= 1
            self.stats.bytes_held -= NODE_BYTES
            parent = current.parent
            if parent is None:
                del self.entries[current.entry_key]
                self.completed.pop(current.entry_key, None)
                self.continuations.pop(current.entry_key, None)
                self._confidences.pop(current.entry_key, None)
            else:
                del parent.children[current.token]
            current = parent

    def snapshot(self) -> dict[str, int]:
        self.stats.entries = len(self.entries)
        return dict(asdict(self.stats))
